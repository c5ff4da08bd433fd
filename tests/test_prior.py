"""The class prior a face is scored under (emotify_ml.scoring.prior): names, mappings, weights, and the frame step."""

from __future__ import annotations

import numpy as np
import pytest

from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring import FrameStep, ScoringOptions
from emotify_ml.scoring.prior import FER2013_TRAIN_COUNTS, PRIORS, WEB_COUNTS, check_prior, prior_weights, reweight


def test_the_source_prior_is_fer2013_training():
    assert sum(FER2013_TRAIN_COUNTS.values()) == 28709 and set(FER2013_TRAIN_COUNTS) == set(EMOTIONS)
    assert set(WEB_COUNTS) == set(EMOTIONS) and max(WEB_COUNTS, key=WEB_COUNTS.get) == "happy"
    assert set(PRIORS) == {"training", "web", "uniform"}


def test_weights_are_the_ratio_of_the_priors():
    assert prior_weights("training") is None
    uniform = prior_weights("uniform")
    shares = np.array([FER2013_TRAIN_COUNTS[c] for c in EMOTIONS]) / 28709
    np.testing.assert_allclose(uniform, (1 / 7) / shares)
    web = prior_weights("web")
    assert web[EMOTIONS.index("neutral")] > 1 > web[EMOTIONS.index("angry")] > web[EMOTIONS.index("fear")]
    # counts or shares: the same prior; strength 0 moves nothing, 0.5 half way (in logits)
    np.testing.assert_allclose(prior_weights({c: 10 * v for c, v in WEB_COUNTS.items()}), web)
    np.testing.assert_allclose(prior_weights("web", strength=0.0), np.ones(7))
    np.testing.assert_allclose(prior_weights("web", strength=0.5) ** 2, web)
    # another source: a model fitted under a uniform prior moved to a uniform one is unchanged
    np.testing.assert_allclose(prior_weights("uniform", source=dict.fromkeys(EMOTIONS, 3)), np.ones(7))


def test_reweighting_renormalises_and_turns_a_torn_face_not_a_sure_one():
    proba = np.array([[0.90, 0.0, 0.02, 0.02, 0.02, 0.02, 0.02],    # sure: angry
                      [0.40, 0.0, 0.05, 0.05, 0.05, 0.05, 0.40]])   # torn between angry and neutral
    assert reweight(proba, None) is proba
    out = reweight(proba, prior_weights("web"))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert EMOTIONS[out[0].argmax()] == "angry" and EMOTIONS[out[1].argmax()] == "neutral"


@pytest.mark.parametrize("prior, says", [
    ("camera", "prior must be one of training, web, uniform or a mapping of each emotion to its share; got 'camera'"),
    (["web"], "prior must be one of training, web, uniform or a mapping of each emotion to its share; got list"),
    ({"happy": 1}, "a prior gives a share to each of angry, disgust, fear, happy, sad, surprise, neutral; missing"),
    ({**dict.fromkeys(EMOTIONS, 1), "joy": 1}, "unknown ['joy']"),
    ({**dict.fromkeys(EMOTIONS, 1), "sad": 0}, "each emotion's share in a prior must be a number > 0 (counts or "
                                               "fractions); got {'sad': 0}"),
    ({**dict.fromkeys(EMOTIONS, 1), "sad": float("nan")}, "must be a number > 0"),
    ({**dict.fromkeys(EMOTIONS, 1), "sad": "lots"}, "must be a number > 0"),
    ({**dict.fromkeys(EMOTIONS, 1), "sad": True}, "must be a number > 0"),
])
def test_a_bad_prior_is_one_clear_value_error(prior, says):
    with pytest.raises(ValueError, match="prior") as info:
        check_prior(prior)
    assert says in str(info.value)
    with pytest.raises(ValueError):
        ScoringOptions(prior=prior).check()


class _Fixed:
    """A model that calls every face torn between angry and neutral."""

    def predict_proba(self, faces):
        return np.tile([0.40, 0.0, 0.05, 0.05, 0.05, 0.05, 0.40], (len(faces), 1))


@pytest.mark.parametrize("prior", ["training", "web", "uniform", dict(WEB_COUNTS)])
def test_the_frame_step_scores_under_its_options_prior(prior):
    crops = np.zeros((3, 48, 48), np.uint8)
    step = FrameStep(_Fixed(), options=ScoringOptions(detect="never", prior=prior))
    expected = reweight(_Fixed().predict_proba(crops), prior_weights(prior))
    np.testing.assert_allclose(step.classify(crops), expected, rtol=0, atol=1e-12)
    assert (prior == "training") == (step.prior_weights is None)
