"""Live speed-ups that must not lose faces: detection every k frames (``StreamOptions.detect_every``), on
synthetic clips of bundled sample faces through the real YuNet detector."""

from __future__ import annotations

import numpy as np
import pytest

from emotify_ml.detection import make_detector
from emotify_ml.io.synthetic import detectable_faces, synthetic_frames
from emotify_ml.scoring import FrameStep, ScoringOptions, Stream, StreamOptions
from emotify_ml.scoring.options import TrackingOptions


class CountingDetector:
    """A real detector that counts its calls."""

    def __init__(self, detector):
        self.detector, self.calls = detector, 0

    def detect(self, frame):
        self.calls += 1
        return self.detector.detect(frame)


@pytest.fixture(scope="module")
def yunet():
    return make_detector("yunet")


@pytest.fixture(scope="module")
def sample_faces(sample_data, yunet):
    return detectable_faces(sample_data.split("PrivateTest").images, 4, yunet)


@pytest.fixture(scope="module")
def model(hog_model_dir):
    from emotify_ml.models import load_emotion_model

    return load_emotion_model(hog_model_dir)


def run(frames, model, yunet, **stream_options):
    detector = CountingDetector(yunet)
    stream = Stream(FrameStep(model, detector, ScoringOptions()), StreamOptions(**stream_options))
    return [stream.update(f, index=i, timestamp=i / 30) for i, f in enumerate(frames)], detector


def test_detect_every_k_keeps_the_faces_and_labels_of_every_frame_detection(model, yunet, sample_faces):
    frames = list(synthetic_frames(sample_faces[:2], frames_per_face=24, n_per_frame=2, face_px=180, jitter=0))
    every, full = run(frames, model, yunet)
    sparse, detector = run(frames, model, yunet, detect_every=3)
    assert full.calls == len(frames) and detector.calls == len(frames) // 3
    assert [len(f) for f in sparse] == [len(f) for f in every] == [2] * len(frames)
    assert [f.track_ids.tolist() for f in sparse] == [f.track_ids.tolist() for f in every]
    assert [f.labels for f in sparse] == [f.labels for f in every]
    carried = [f for f in sparse if f.timings["detect"] == 0.0]
    assert len(carried) == len(frames) - detector.calls and all(f.timings["crop"] > 0 for f in carried)
    assert all(f.sources == ("tracked",) * 2 for f in carried)
    assert all(f.sources == ("detector",) * 2 for f in sparse if f.timings["detect"] > 0)


def test_detect_every_k_drops_a_face_that_leaves_and_redetects_at_once(model, yunet, sample_faces):
    both = list(synthetic_frames(sample_faces[:2], frames_per_face=9, n_per_frame=2, face_px=180, jitter=0))
    alone = [f.copy() for f in both]
    for f in alone:
        f[:, 320:] = 90  # the right face leaves
    frames = both + alone
    results, detector = run(frames, model, yunet, detect_every=4, tracking=TrackingOptions(max_missed=3))
    counts = [len(f) for f in results]
    # frames 0..8 show two faces; the right one is gone by the first detection after it left (frame 12)
    assert counts[:9] == [2] * 9 and counts[12:] == [1] * (len(frames) - 12)
    left_id = results[0].track_ids[int(np.argmin(results[0].boxes[:, 0]))]
    assert all(f.track_ids.tolist() == [left_id] for f in results[12:])
    # from the detection that lost the track until the one that drops it (max_missed=3), every frame is detected
    detected = [i for i, f in enumerate(results) if f.timings["detect"] > 0]
    assert detected == [0, 4, 8, 12, 13, 14, 15, 16]
    assert detector.calls == len(detected)


def test_detect_every_k_starts_afresh_on_independent_pictures_and_after_a_faceless_frame(model, yunet, sample_faces):
    face = next(synthetic_frames(sample_faces[:1], frames_per_face=1, jitter=0))
    blank = np.full_like(face, 90)
    results, detector = run([face, face, blank, face, face], model, yunet, detect_every=2)
    assert [len(f) for f in results] == [1, 1, 0, 1, 1]
    detected = [i for i, f in enumerate(results) if f.timings["detect"] > 0]
    assert detected == [0, 2, 3]  # after a detection that lost the face, the next frame detects again
    assert results[3].track_ids.tolist() == results[0].track_ids.tolist()
    detector.calls = 0
    stream = Stream(FrameStep(model, detector), StreamOptions(detect_every=5))
    for _ in range(3):
        stream.update(face, independent=True)
    assert detector.calls == 3


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_detect_every_is_checked(value):
    with pytest.raises(ValueError, match="detect_every must be an int >= 1"):
        StreamOptions(detect_every=value).check()
    assert StreamOptions().detect_every == 1


@pytest.mark.parametrize("argv, match", [(["--detect-every", "0"], "detect_every must be an int >= 1 (1: detect on every frame); got 0"),
                                         (["--runtime", "onnx"], "runtime must be one of"),
                                         (["--pose-every", "0"], "--pose-every must be an int >= 1; got 0")])
def test_the_cli_refuses_bad_speed_options_before_opening_anything(argv, match, capsys):
    from emotify_ml.live.__main__ import EXIT_USAGE, main

    with pytest.raises(SystemExit) as info:
        main(["--source", "nowhere.mp4", *argv])  # the source does not exist: not looked at yet
    assert info.value.code == EXIT_USAGE
    assert match in capsys.readouterr().err


def test_pose_every_k_reuses_the_last_people_and_their_action_probabilities():
    from emotify_ml.actions.live import ActionPredictor
    from emotify_ml.data.mpii import load_mpii, sample_mpii_path

    from .test_actions_live import FakePose

    class Counting:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __call__(self, *args):
            self.calls += 1
            return self.inner(*args)

    class Actions:
        calls = 0

        def predict_proba(self, poses):
            Actions.calls += 1
            return np.full((len(poses), 20), 1 / 20)

    pose = Counting(FakePose(load_mpii(sample_mpii_path()).joints[0]))
    predictor = ActionPredictor(pose, Actions(), np.full((7, 20), 1 / 20), pose_every=3)
    frame, face = np.zeros((480, 640, 3), np.uint8), np.array([[290, 70, 60, 60]])
    out = [predictor.predict(frame, face, np.eye(7)[[3]], track_ids=[1]) for _ in range(7)]
    assert pose.calls == Actions.calls == 3 and all(o[0]["person_box"] == [200.0, 50.0, 240.0, 420.0] for o in out)
    predictor.reset()
    predictor.predict(frame, face, np.eye(7)[[3]])
    assert pose.calls == 4
    with pytest.raises(ValueError, match="pose_every must be an int >= 1"):
        ActionPredictor(pose, Actions(), None, pose_every=0)
