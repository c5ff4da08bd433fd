"""The framing measurement (benchmarks/framing.py), the head-choice rule (benchmarks/head_balance.py), the
evaluations the backbone ablation reads (benchmarks/backbone_ablation.py), the scoring variants
(benchmarks/scoring_variants.py: the crops' light and detail, the views' geometric mean, the prior estimated
by EM) and the head fitted on views (benchmarks/views_head.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy_benchmark  # noqa: E402
import framing  # noqa: E402
import head_balance  # noqa: E402
import scoring_variants  # noqa: E402
import views_head  # noqa: E402


def test_measure_maps_the_box_back_to_the_48px_face(sample_data):
    faces = sample_data.split("Training").images[:12]
    m = framing.measure(faces, scale=4)
    found = ~np.isnan(m["boxes"][:, 0])
    assert found.mean() >= 0.75
    stats = framing.framing_stats(m["boxes"], m["landmarks"])
    # FER-2013's crop is about the square of YuNet's box: the measurement behind DEFAULT_MARGIN = 0
    assert -0.1 < stats["margin"]["median"] < 0.1 and abs(stats["shift_y_over_h"]["median"]) < 0.1
    assert 0.3 < stats["eye_mid_y_over_side"]["median"] < 0.45


def test_framing_stats_of_a_known_box():
    boxes = np.array([[8.0, 4.0, 32.0, 40.0]])  # a 40-high box centred 0 px off the crop's centre
    marks = np.array([[[16.0, 18.0], [32.0, 18.0], [24, 26], [18, 34], [30, 34]]])
    s = framing.framing_stats(boxes, marks)
    assert s["crop_side_over_box"]["median"] == pytest.approx(1.2) and s["margin"]["median"] == pytest.approx(0.1)
    assert s["shift_y_over_h"]["median"] == pytest.approx(0.0) and s["eye_dist_over_side"]["median"] == pytest.approx(1 / 3)


def test_logit_adjustment_and_the_rule():
    proba, prior = np.array([[0.5, 0.5]]), np.array([0.8, 0.2])
    np.testing.assert_allclose(head_balance.adjust(proba, prior, 0.0), proba)
    np.testing.assert_allclose(head_balance.adjust(proba, prior, 1.0), [[0.2, 0.8]])
    assert head_balance.rule(0.66, 0.37) == pytest.approx(0.515)
    rows = [{"rule": 0.514}, {"rule": 0.518}, {"rule": 0.5}]
    assert head_balance.choose(rows) is rows[0]  # +0.004 is under the 0.005 a replacement needs
    rows[2]["rule"] = 0.52
    assert head_balance.choose(rows) is rows[2]


def test_the_ablation_knows_a_model_folder_by_the_run_it_came_from(tmp_path, copied_store_uri):
    """A folder shipped anew holds another model: its evaluations are those of its run, not of its path."""
    import json

    import mlflow

    import backbone_ablation

    client = mlflow.MlflowClient(copied_store_uri)
    experiment = client.create_experiment(backbone_ablation.MUX_EXPERIMENT)
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "provenance.json").write_text(json.dumps({"run_id": "abc123"}))
    def evaluation(uri, source, f1, start_time, views=True, prior=None):
        run = client.create_run(experiment, start_time=start_time, tags={"model.uri": uri, "model.source": source})
        client.log_metric(run.info.run_id, "val_macro_f1", f1)
        if isinstance(prior, dict):  # a mapping is logged one param an emotion
            for emotion, share in prior.items():
                client.log_param(run.info.run_id, f"scoring.prior.{emotion}", share)
        elif prior is not None:
            client.log_param(run.info.run_id, "scoring.prior", prior)
        if views:  # the product's views; an evaluation from before them logged no such params (one crop)
            client.log_param(run.info.run_id, "scoring.crop_spread", 0.05)
            client.log_param(run.info.run_id, "scoring.mirror", True)
        client.set_terminated(run.info.run_id)

    evaluation(str(folder), f"{folder} (from run old999)", 0.37, 1000)  # the model the folder held before
    evaluation("runs:/abc123/model", "runs:/abc123/model", 0.38, 2000)
    assert backbone_ablation.muxspace_metrics(client, str(folder))["macro_f1"] == 0.38
    evaluation(str(folder), f"{folder} (from run abc123)", 0.39, 3000)  # the folder itself, since it holds abc123
    assert backbone_ablation.muxspace_metrics(client, str(folder))["macro_f1"] == 0.39
    assert backbone_ablation.muxspace_metrics(client, "runs:/abc123/model")["macro_f1"] == 0.38
    # an evaluation that scored one crop a face is not compared with the product's views, however new
    evaluation("runs:/abc123/model", "runs:/abc123/model", 0.36, 4000, views=False)
    assert backbone_ablation.muxspace_metrics(client, "runs:/abc123/model")["macro_f1"] == 0.38
    assert backbone_ablation.muxspace_metrics(client, "runs:/abc123/model", views=(0.0, False))["macro_f1"] == 0.36
    # nor one under another class prior than the model's own
    evaluation("runs:/abc123/model", "runs:/abc123/model", 0.43, 5000, prior="web")
    evaluation("runs:/abc123/model", "runs:/abc123/model", 0.44, 5500, prior={"happy": 4, "neutral": 3})
    assert backbone_ablation.muxspace_metrics(client, "runs:/abc123/model")["macro_f1"] == 0.38
    evaluation("runs:/abc123/model", "runs:/abc123/model", 0.40, 6000, prior="training")
    assert backbone_ablation.muxspace_metrics(client, "runs:/abc123/model")["macro_f1"] == 0.40


def test_light_normalisations_of_crops_in_views():
    rng = np.random.default_rng(0)
    crops = rng.integers(40, 120, size=(3, 6, 48, 48), dtype=np.uint8)  # dim, low-contrast faces in six views
    light = {"mean": 129.5, "std": 54.1}
    assert scoring_variants.normalise(crops, "none", **light) is crops
    for how in ("standardise", "equalise", "clahe"):
        out = scoring_variants.normalise(crops, how, **light)
        assert out.shape == crops.shape and out.dtype == np.uint8
        assert out.std() > crops.std()  # each spreads the crops' grey levels
    out = scoring_variants.normalise(crops, "standardise", **light).astype(float)
    assert abs(out[1, 2].mean() - 129.5) < 1.0 and abs(out[1, 2].std() - 54.1) < 1.0  # crop by crop
    with pytest.raises(ValueError, match="expected one of none, standardise"):
        scoring_variants.normalise(crops, "gamma", **light)


def test_detail_of_crops_and_the_variants_that_move_it():
    rng = np.random.default_rng(0)
    grain = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    smooth = cv2.normalize(cv2.GaussianBlur(grain, (0, 0), 3.0), None, 0, 255, cv2.NORM_MINMAX)
    dim = (smooth * 0.5 + 40).round().astype(np.uint8)  # the same face in half the contrast, darker
    detail = scoring_variants.detail_of(np.stack([grain, smooth, dim]))
    assert detail.shape == (3,) and detail[0] > 2 * detail[1]  # grain holds more fine detail than a blur of it
    assert abs(detail[1] - detail[2]) < 0.1 * detail[1]  # and the measure ignores the crop's light
    crops = np.stack([smooth, grain])[None].repeat(2, axis=0)  # (2 faces, 2 views, 48, 48)
    light = {"mean": 129.5, "std": 54.1}
    sharp, soft = (scoring_variants.normalise(crops, how, **light) for how in ("sharpen", "soften"))
    assert sharp.shape == soft.shape == crops.shape and sharp.dtype == soft.dtype == np.uint8
    before = scoring_variants.detail_of(crops)
    assert np.all(scoring_variants.detail_of(sharp) > before) and np.all(scoring_variants.detail_of(soft) < before)


def test_estimate_prior_recovers_a_label_shift_from_calibrated_probabilities():
    # three classes, one feature: x ~ N(mean of the class, 1); the model's probabilities are the exact posteriors
    # under the source prior, so EM must find the prior the faces were drawn with, and the source's under no shift
    rng = np.random.default_rng(0)
    means, source = np.array([-2.0, 0.0, 2.0]), np.array([0.2, 0.3, 0.5])

    def posteriors(prior):
        y = rng.choice(3, size=20_000, p=prior)
        likelihood = np.exp(-0.5 * ((rng.normal(means[y], 1.0))[:, None] - means) ** 2)
        joint = likelihood * source
        return joint / joint.sum(axis=1, keepdims=True)

    shifted = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(scoring_variants.estimate_prior(posteriors(shifted), source * 10), shifted, atol=0.02)
    np.testing.assert_allclose(scoring_variants.estimate_prior(posteriors(source), source), source, atol=0.02)
    # the plain mean of the probabilities is pulled toward the source prior; EM is not
    assert abs(posteriors(shifted).mean(axis=0)[0] - 0.7) > 0.05


def test_views_combined_by_their_geometric_mean():
    views = np.array([[[0.5, 0.5, 0.0], [0.5, 0.25, 0.25]]])  # one face, two views
    np.testing.assert_allclose(views.mean(axis=1), [[0.5, 0.375, 0.125]])
    out = scoring_variants.geometric_mean(views)
    # sqrt(.25), sqrt(.125), ~0 renormalised: a view that rules a class out keeps it out
    np.testing.assert_allclose(out, [[0.5 / (0.5 + 0.125 ** 0.5), 0.125 ** 0.5 / (0.5 + 0.125 ** 0.5), 0.0]], atol=1e-5)
    calls = []
    crops = np.zeros((3, 6, 48, 48), np.uint8)
    got = accuracy_benchmark.per_view(lambda x: calls.append(len(x)) or np.tile([[1.0, 0.0]], (len(x), 1)), crops)
    assert calls == [18] and got.shape == (3, 6, 2)  # every view of every face in one call


def test_one_view_of_each_face_drawn_at_random():
    views = np.arange(4 * 6).reshape(4, 6, 1, 1) * np.ones((1, 1, 2, 2))  # face i, view v holds 6 i + v
    picked = views_head.one_view_each(views, np.random.default_rng(0))
    assert picked.shape == (4, 2, 2)
    assert [int(p[0, 0]) // 6 for p in picked] == [0, 1, 2, 3]  # one view of each face, in order
    again = views_head.one_view_each(views, np.random.default_rng(0))
    np.testing.assert_array_equal(picked, again)  # seeded
    many = views_head.one_view_each(np.repeat(views[:1], 600, axis=0), np.random.default_rng(1))
    assert len(np.unique(many[:, 0, 0])) == 6  # every view can be drawn


def test_clip_seeds_refuse_an_unknown_prior_before_any_work(capsys):
    with pytest.raises(SystemExit) as bad:
        framing.main(["--clip-seeds", "0", "--prior", "camera"])
    assert bad.value.code == 2
    assert "argument --prior: invalid choice: 'camera'" in capsys.readouterr().err
