"""The scoring core on stand-in detectors and classifiers: options, FrameStep (detect modes, timings), Faces, Stream."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotify_ml.detection import Detections
from emotify_ml.features.preprocessing import DEFAULT_MARGIN
from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring import (DetectorOptions, Faces, FrameStep, ScoringOptions, Stream, StreamOptions)
from emotify_ml.scoring.options import SmoothingOptions, TrackingOptions


class ScriptedDetector:
    """Returns the given boxes for every frame (with level eyes)."""

    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        k = len(self.boxes)
        eyes = np.zeros((k, 5, 2), np.float32)
        eyes[:, 0] = self.boxes[:, :2] + self.boxes[:, 2:] * [0.3, 0.4]
        eyes[:, 1] = self.boxes[:, :2] + self.boxes[:, 2:] * [0.7, 0.4]
        return Detections(self.boxes.copy(), np.ones(k, np.float32), eyes)


class NoisyClassifier:
    """predict_proba from a fixed noisy sequence (one row per call per face)."""

    def __init__(self, probas):
        self.probas = probas
        self.calls = []

    def predict_proba(self, faces):
        self.calls.append(np.asarray(faces).shape)
        i = len(self.calls) - 1
        return np.repeat(self.probas[i % len(self.probas)][None], len(faces), axis=0)


def noisy_steady_proba(n=300, seed=0):
    """A steady 'happy' face seen by a noisy model: the raw arg-max often jumps to 'neutral'."""
    rng = np.random.default_rng(seed)
    base = np.full(7, 0.05)
    base[3], base[6] = 0.45, 0.25
    p = base + rng.normal(0, 0.12, (n, 7)).clip(-0.2, 0.2)
    p = np.clip(p, 1e-3, None)
    return p / p.sum(1, keepdims=True)


def step_with(boxes, probas=None, **options):
    return FrameStep(NoisyClassifier(noisy_steady_proba(60) if probas is None else probas), ScriptedDetector(boxes),
                     ScoringOptions(**options))


# --- options ------------------------------------------------------------------------------------


def test_options_hold_the_defaults_and_check_values():
    assert ScoringOptions().margin == DEFAULT_MARGIN and ScoringOptions().detector == DetectorOptions()
    assert StreamOptions().smoothing == SmoothingOptions() and StreamOptions().tracking == TrackingOptions()
    from emotify_ml.scoring.face_tracks import IoUTracker
    from emotify_ml.scoring.smoothing import ProbabilitySmoother

    assert ProbabilitySmoother().alpha == SmoothingOptions().alpha and IoUTracker().max_missed == TrackingOptions().max_missed
    for bad, match in [(ScoringOptions(detect="maybe"), "detect must be"), (ScoringOptions(margin=2), "margin"),
                       (ScoringOptions(detector=DetectorOptions(kind="dlib")), "detector kind"),
                       (ScoringOptions(detector=DetectorOptions(det_size=8)), "det_size"),
                       (StreamOptions(SmoothingOptions(alpha=0)), "alpha"),
                       (ScoringOptions(detector=DetectorOptions(track_threshold=-0.1)), "track_threshold"),
                       (ScoringOptions(detector=DetectorOptions(retry_size=10)), "retry_size must be an int >= 32"),
                       (ScoringOptions(detector=DetectorOptions(retry_size=640.0)), "retry_size must be an int >= 32"),
                       (ScoringOptions(crop_spread=-0.05), "crop_spread must be a number in"),
                       (ScoringOptions(crop_spread=0.3), "crop_spread must be a number in"),
                       (ScoringOptions(crop_spread=True), "crop_spread must be a number in"),
                       (ScoringOptions(crop_spread="0.05"), "crop_spread must be a number in"),
                       (ScoringOptions(crop_spread=None), "crop_spread must be a number in"),
                       (ScoringOptions(margin="0"), "margin must be in"),
                       (ScoringOptions(mirror="yes"), "mirror must be true or false"),
                       (ScoringOptions(views_on_crops=1), "views_on_crops must be true or false; got 1"),
                       (StreamOptions(tracking=TrackingOptions(iou_threshold=2)), "iou_threshold")]:
        with pytest.raises(ValueError, match=match):
            bad.check()


# --- frame step ---------------------------------------------------------------------------------


class ScoredDetector:
    """Per frame, the boxes and scores of ``frames[i]`` (the last one again after the end) at its threshold, level eyes.

    Its ``score_threshold`` is by default the default options' ``detect_threshold``, as ``DetectorOptions.make()``
    builds YuNet.
    """

    def __init__(self, frames, score_threshold=DetectorOptions().detect_threshold):
        self.frames, self.calls, self.score_threshold = frames, 0, score_threshold

    def detect(self, frame):
        boxes, scores = self.frames[min(self.calls, len(self.frames) - 1)]
        self.calls += 1
        found = ScriptedDetector(boxes).detect(frame)
        keep = np.asarray(scores, np.float32) >= self.score_threshold  # as YuNet reports only faces at its threshold
        return Detections(found.boxes[keep], np.asarray(scores, np.float32)[keep], found.landmarks[keep])


def test_a_face_below_the_score_threshold_counts_only_where_it_continues_a_track():
    assert DetectorOptions().detect_threshold == DetectorOptions().track_threshold < DetectorOptions().score_threshold
    assert DetectorOptions(score_threshold=0.2).detect_threshold == 0.2  # the lower of the two
    boxes = [[100, 100, 120, 120], [400, 120, 120, 120]]
    frame = np.full((480, 640, 3), 90, np.uint8)
    step = FrameStep(NoisyClassifier(noisy_steady_proba(10)), ScoredDetector([(boxes, [0.9, 0.4])]), ScoringOptions())
    assert step.score(frame).boxes.tolist() == [boxes[0]]  # a picture, or no track there: new faces need 0.6
    assert step.score(frame, track_boxes=[[90, 330, 120, 120]]).boxes.tolist() == [boxes[0]]  # a track elsewhere
    assert step.score(frame, track_boxes=[[410, 125, 120, 120]]).boxes.tolist() == boxes  # the face continues one
    haar = FrameStep(NoisyClassifier(noisy_steady_proba(10)), ScoredDetector([(boxes, [0.9, 0.4])]),
                     ScoringOptions(detector=DetectorOptions(kind="haar")))
    assert len(haar.score(frame)) == 2  # Haar has no scores to compare
    own = ScoredDetector([(boxes, [0.9, 0.4])], score_threshold=0.4)  # built with its own threshold: taken at its word
    assert len(FrameStep(NoisyClassifier(noisy_steady_proba(10)), own, ScoringOptions()).score(frame)) == 2
    assert step.new_face_threshold == 0.6 and haar.new_face_threshold is None


def test_a_faint_face_takes_only_a_track_no_confident_face_took():
    # frame 2: a confident face and a faint one both overlap the one track (IoU 0.54 each, 0.25 with each other,
    # so YuNet's own suppression keeps both): the confident one continues it, the faint one is not a new face
    detector = ScoredDetector([([[200, 100, 100, 100]], [0.9]),
                               ([[170, 100, 100, 100], [230, 100, 100, 100]], [0.9, 0.4])])
    stream = Stream(FrameStep(NoisyClassifier(noisy_steady_proba(10)), detector, ScoringOptions()))
    frame = np.full((480, 640, 3), 90, np.uint8)
    assert stream.update(frame).track_ids.tolist() == [1]
    second = stream.update(frame, index=1)
    assert second.boxes.tolist() == [[170, 100, 100, 100]] and second.track_ids.tolist() == [1]


@pytest.mark.parametrize("track_threshold, expected", [(0.3, [1, 1, 1, 1]), (0.6, [1, 0, 1, 1])])
def test_a_stream_keeps_a_face_whose_score_dips_for_a_frame(track_threshold, expected):
    scores = [[0.9], [0.45], [0.9], [0.9]]  # frame 2: the face turned or blurred for a moment
    options = ScoringOptions(detector=DetectorOptions(track_threshold=track_threshold))
    detector = ScoredDetector([([[100, 100, 120, 120]], score) for score in scores],
                              score_threshold=options.detector.detect_threshold)
    stream = Stream(FrameStep(NoisyClassifier(noisy_steady_proba(10)), detector, options))
    seen = [stream.update(np.full((480, 640, 3), 90, np.uint8), index=i, timestamp=i / 30) for i in range(4)]
    assert [len(faces) for faces in seen] == expected
    assert {int(i) for faces in seen for i in faces.track_ids} == {1}  # one face, one track, throughout
    newcomer = Stream(FrameStep(NoisyClassifier(noisy_steady_proba(10)),
                                ScoredDetector([([[100, 100, 120, 120]], [0.45])],
                                               score_threshold=options.detector.detect_threshold), options))
    assert len(newcomer.update(np.full((480, 640, 3), 90, np.uint8))) == 0  # nothing new appears below 0.6


def test_frame_step_batches_faces_and_times_each_stage():
    step = step_with([[100, 100, 120, 120], [400, 120, 120, 120]])
    faces = step.score(np.full((480, 640, 3), 90, np.uint8))
    assert step.model.calls == [(2 * step.n_views, 48, 48)]  # one batched call per frame: every view of both faces
    assert len(faces) == 2 and faces.sources == ("detector", "detector") and faces.landmarks.shape == (2, 5, 2)
    assert set(faces.timings) == {"detect", "crop", "embed", "classify"}
    assert faces.labels == [EMOTIONS[k] for k in faces.probabilities.argmax(1)]
    assert faces.track_ids is None and faces.smoothed is None  # the step is stateless


class ViewClassifier:
    """Probabilities that depend on the crop: the class is the crop's mean grey level, in seven bands."""

    def predict_proba(self, faces):
        faces = np.asarray(faces, np.float64)
        proba = np.full((len(faces), 7), 0.01)
        proba[np.arange(len(faces)), np.minimum(faces.reshape(len(faces), -1).mean(axis=1) // 37, 6).astype(int)] = 0.94
        return proba


def gradient_frame():
    """A frame whose crops differ with margin and mirroring: grey levels rise left to right and top to bottom."""
    y, x = np.mgrid[0:480, 0:640]
    return np.repeat(((x * 0.25 + y * 0.2) % 256).astype(np.uint8)[..., None], 3, axis=2)


def test_each_face_is_scored_in_views_of_three_margins_and_their_mirror_images():
    from emotify_ml.features.preprocessing import crop_faces

    box = [[200, 150, 120, 140]]
    step = FrameStep(ViewClassifier(), ScriptedDetector(box), ScoringOptions(crop_spread=0.05))
    assert step.view_offsets == (0.0, -0.05, 0.05) and step.mirror and step.n_views == 6
    frame = gradient_frame()
    faces, crops = step.locate(frame)
    assert crops.shape == (1, 6, 48, 48) and crops.dtype == np.uint8
    eyes = ScriptedDetector(box).detect(frame).eyes
    for k, margin in enumerate((DEFAULT_MARGIN, DEFAULT_MARGIN - 0.05, DEFAULT_MARGIN + 0.05)):
        cut = crop_faces(frame, np.asarray(box, np.float32), margin, 48, eyes=eyes)[0]
        assert np.array_equal(crops[0, k], cut) and np.array_equal(crops[0, 3 + k], cut[:, ::-1])
    assert not np.array_equal(crops[0, 1], crops[0, 2])  # the views differ
    # the face's probabilities are the mean of its views' (one model call), and score() gives the same
    views = ViewClassifier().predict_proba(crops[0])
    np.testing.assert_allclose(step.classify(crops), views.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(step.score(frame).probabilities, views.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(step.classify(crops[:, 0]), views[:1])  # (K, S, S): one crop a face
    bgr = np.repeat(crops[:, 0, :, :, None], 3, axis=3)  # (K, S, S, 3): one BGR crop a face, not 3 views
    np.testing.assert_allclose(step.classify(bgr), ViewClassifier().predict_proba(bgr[..., 0]))


@pytest.mark.parametrize("options, offsets, mirror", [
    ({"crop_spread": 0.0, "mirror": False}, (0.0,), False), ({"crop_spread": 0.0}, (0.0,), True),
    ({"mirror": False}, (0.0, -0.05, 0.05), False), ({"detect": "never"}, (0.0,), False),
    ({"detect": "never", "views_on_crops": True}, (0.0, -0.05, 0.05), True)])
def test_views_follow_the_options_and_crops_given_are_scored_once(options, offsets, mirror):
    step = step_with([[100, 100, 120, 120]], **options)
    assert step.view_offsets == offsets and step.mirror is mirror and step.n_views == len(offsets) * (1 + mirror)
    from emotify_ml.features.preprocessing import crop_faces

    faces, crops = step.locate(gradient_frame())
    assert crops.shape == (1, step.n_views, 48, 48)
    if step.n_views == 1 and options.get("detect") != "never":  # one view: exactly the one crop at the margin
        eyes = step.detector.detect(gradient_frame()).eyes
        assert np.array_equal(crops, crop_faces(gradient_frame(), faces.boxes, DEFAULT_MARGIN, eyes=eyes)[:, None])
    assert step.classify(crops).shape == (1, 7)


def test_a_whole_picture_face_gets_the_views_of_a_detected_one():
    step = step_with(np.zeros((0, 4)), detect="auto")
    faces, crops = step.locate(gradient_frame(), picture=True)
    assert faces.sources == ("whole_image",) and crops.shape == (1, 6, 48, 48)
    assert np.array_equal(crops[0, 3], crops[0, 0][:, ::-1]) and not np.array_equal(crops[0, 1], crops[0, 0])


@pytest.mark.parametrize("mode, picture, expected", [
    ("always", True, []), ("auto", True, ["whole_image"]), ("auto", False, []), ("never", False, ["whole_image"])])
def test_detect_modes_on_a_faceless_frame(mode, picture, expected):
    step = step_with(np.zeros((0, 4)), detect=mode)
    faces = step.score(np.full((60, 80, 3), 90, np.uint8), picture=picture)
    assert list(faces.sources) == expected
    if expected:
        assert faces.boxes.tolist() == [[0, 0, 80, 60]] and np.isnan(faces.scores[0]) and faces.landmarks is None
    assert step.detector.calls == (0 if mode == "never" else 1)


def test_sklearn_pipeline_models_report_embed_and_classify(faces):
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.models import FittedModel
    from emotify_ml.pipeline import build_pipeline

    X, y = faces
    model = FittedModel(build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)},
                                             classifier=LogisticRegression(max_iter=200)).fit(X, y))
    step = FrameStep(model, ScriptedDetector([[10, 10, 40, 40]]))
    timings = {}
    proba = step.classify(X, timings)
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-12)
    assert timings["embed"] > 0 and timings["classify"] > 0


def test_faces_records_are_plain_json():
    faces = step_with([[10, 10, 50, 50]]).score(np.zeros((100, 100, 3), np.uint8))
    (record,) = json.loads(json.dumps(faces.to_records()))
    assert set(record) >= {"box", "score", "landmarks", "probabilities", "label", "track_id", "actions"}
    assert list(record["probabilities"]) == list(EMOTIONS) and record["label"] == faces.labels[0]
    assert Faces.empty().to_records() == [] and Faces.empty().labels == []


# --- stream -------------------------------------------------------------------------------------


def test_stream_tracks_and_smooths_and_counts_flicker():
    step = step_with([[100, 100, 120, 120], [400, 120, 120, 120]])
    stream = Stream(step, StreamOptions(SmoothingOptions(alpha=0.2)))
    frame = np.full((480, 640, 3), 90, np.uint8)
    results = [stream.update(frame, index=i, timestamp=i / 30) for i in range(60)]
    assert {int(i) for r in results for i in r.track_ids} == {1, 2}
    assert set(results[0].timings) >= {"detect", "crop", "embed", "classify", "track"}
    flicker = stream.flicker.summary()
    assert flicker["smoothed_changes"] < flicker["raw_changes"]
    face = results[-1][0]
    assert face.label == EMOTIONS[results[-1].smoothed[0].argmax()] and face.raw_label == max(face.probabilities,
                                                                                              key=face.probabilities.get)


def test_stream_without_faces_and_independent_frames():
    step = step_with(np.zeros((0, 4)))
    stream = Stream(step)
    assert len(stream.update(np.zeros((100, 100, 3), np.uint8))) == 0 and step.model.calls == []
    stream = Stream(step_with([[10, 10, 50, 50]]))
    frame = np.zeros((100, 100, 3), np.uint8)
    a, b = stream.update(frame, independent=True), stream.update(frame, independent=True)
    np.testing.assert_array_equal(b.smoothed, b.probabilities)  # no smoothing across unrelated pictures
    assert a.track_ids[0] != b.track_ids[0]


class _Actions:
    """A predictor with the documented interface; records the calls."""

    def __init__(self):
        self.calls, self.forgotten, self.last_timings = [], [], {}

    def predict(self, frame, boxes, proba, track_ids=None):
        self.calls.append((boxes.shape, proba.shape, list(track_ids)))
        self.last_timings = {"pose": 1.0}
        return [{"label": "dancing"} for _ in boxes]

    def forget(self, ids):
        self.forgotten.extend(ids)


def test_stream_calls_the_action_predictor_without_touching_it():
    actions = _Actions()
    before = dict(vars(actions))
    stream = Stream(step_with([[10, 10, 50, 50]]), actions=actions)
    faces = stream.update(np.zeros((100, 100, 3), np.uint8))
    assert faces.actions == [{"label": "dancing"}] and faces[0].actions == {"label": "dancing"}
    assert actions.calls == [((1, 4), (1, 7), [1])] and {"actions", "actions.pose"} <= set(faces.timings)
    assert set(vars(actions)) == set(before)  # no attribute set on the object it was handed
