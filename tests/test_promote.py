"""The champion moves only on better validation evidence; failed runs are never registered."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from emotify_ml.models import DEFAULT_REGISTERED_MODEL, load_emotion_model, log_emotion_model
from emotify_ml.registry import current_champion, promote
from emotify_ml.mlflow_runs import tracked_run
from tests.conftest import synthetic_faces

EXPERIMENT = "promote"


@pytest.fixture(scope="module")
def fitted():
    """A tiny fitted emotion Pipeline and faces to score."""
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.pipeline import build_pipeline

    faces, labels = synthetic_faces(28)
    return build_pipeline(features={"hog": HOGTransformer()}, classifier=LogisticRegression(max_iter=200)).fit(
        faces, labels), faces


def make_run(tracking_uri, fitted, *, val, test=0.5, data_hash="a" * 64, fail=False):
    """A run with validation/test accuracy and a logged model; ``fail``: it raises after logging the model."""
    pipeline, faces = fitted
    try:
        with tracked_run(tracking_uri=tracking_uri, experiment=EXPERIMENT, run_name=f"val{val}",
                         tags={"experiment_name": "svm_hog"}) as run:
            mlflow.log_params({"dataset.hash": data_hash})
            mlflow.log_metrics({"val_accuracy": val, "test_accuracy": test})
            log_emotion_model(pipeline)
            if fail:
                raise RuntimeError("crashed after logging the model")
    except RuntimeError:
        pass
    return run.info.run_id


def versions(tracking_uri):
    return MlflowClient(tracking_uri).search_model_versions(f"name = '{DEFAULT_REGISTERED_MODEL}'")


def test_champion_moves_only_on_better_validation(tracking_uri, fitted):
    make_run(tracking_uri, fitted, val=0.40, test=0.90)  # best on test: must not matter
    best = make_run(tracking_uri, fitted, val=0.60, test=0.20)

    first = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT)
    assert first.promoted and first.candidate_run_id == best and first.version == "1"
    assert first.champion_version is None and "none" in first.summary()
    assert current_champion(tracking_uri=tracking_uri).run_id == best

    worse = make_run(tracking_uri, fitted, val=0.50, test=0.99)
    refused = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT, run_id=worse)
    assert not refused.promoted and refused.version is None
    assert "0.5000" in refused.summary() and "0.6000" in refused.summary()  # both values are printed
    assert "does not beat" in refused.reason
    assert len(versions(tracking_uri)) == 1 and str(current_champion(tracking_uri=tracking_uri).version) == "1"

    better = make_run(tracking_uri, fitted, val=0.70)
    second = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT)
    assert second.promoted and second.candidate_run_id == better and second.version == "2"
    assert (second.champion_version, second.champion_value) == ("1", 0.60)
    assert {str(v.version) for v in versions(tracking_uri)} == {"1", "2"}  # the previous champion stays a version

    again = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT)
    assert not again.promoted and "already" in again.reason and len(versions(tracking_uri)) == 2

    model = load_emotion_model(tracking_uri=tracking_uri)  # models:/emotify-emotion@champion
    assert model.predict(fitted[1][:3]).shape == (3, 8)


def test_failed_runs_are_never_registered(tracking_uri, fitted):
    failed = make_run(tracking_uri, fitted, val=0.99, fail=True)
    assert MlflowClient(tracking_uri).get_run(failed).info.status == "FAILED"
    ok = make_run(tracking_uri, fitted, val=0.30)
    assert promote(tracking_uri=tracking_uri, experiment=EXPERIMENT).candidate_run_id == ok
    with pytest.raises(ValueError, match="FAILED"):
        promote(tracking_uri=tracking_uri, experiment=EXPERIMENT, run_id=failed)
    assert [v.run_id for v in versions(tracking_uri)] == [ok]


def test_selection_refuses_test_metrics_and_incomparable_data(tracking_uri, fitted):
    make_run(tracking_uri, fitted, val=0.40)
    with pytest.raises(ValueError, match="validation"):
        promote(tracking_uri=tracking_uri, experiment=EXPERIMENT, metric="test_accuracy")
    assert promote(tracking_uri=tracking_uri, experiment=EXPERIMENT).promoted
    other = make_run(tracking_uri, fitted, val=0.80, data_hash="b" * 64)
    refused = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT, run_id=other)
    assert not refused.promoted and "other data" in refused.reason
    forced = promote(tracking_uri=tracking_uri, experiment=EXPERIMENT, run_id=other, force=True)
    assert forced.promoted and current_champion(tracking_uri=tracking_uri).run_id == other


def test_a_failing_run_ends_failed_with_the_error_and_no_model(tracking_uri):
    from pipelines.run import compose, run

    cfg = compose(["experiment=svm_hog", "classifier.kernel=linear", "classifier.C=-1",
                   f"tracking.uri={tracking_uri}", f"tracking.experiment={EXPERIMENT}"])
    with pytest.raises(ValueError, match="C"):
        run(cfg)
    client = MlflowClient(tracking_uri)
    (failed,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert failed.info.status == "FAILED" and "C" in failed.data.tags["error"]
    assert not failed.outputs.model_outputs  # no model was logged
    with pytest.raises(ValueError, match="no FINISHED run"):
        promote(tracking_uri=tracking_uri, experiment=EXPERIMENT)
    assert versions(tracking_uri) == []


def test_expected_errors_become_one_line_and_exit_code_2(capsys):
    from hydra.errors import InstantiationException

    from emotify_ml.exceptions import DataNotFoundError
    from pipelines._common import exit_on_error

    def missing_data():
        try:
            raise DataNotFoundError("no FER-2013 at /nowhere")
        except DataNotFoundError as exc:  # what hydra.utils.instantiate does with a target's error
            raise InstantiationException("Error in call to target 'load_fer2013'") from exc

    with pytest.raises(SystemExit) as exit_info:
        exit_on_error(missing_data)()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: no FER-2013 at /nowhere\n"
