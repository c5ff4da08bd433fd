"""Live action path: BlazePose → MPII mapping, no person → nothing, and the predictor's contract."""

from __future__ import annotations

import numpy as np

from emotify_ml.actions.blazepose import BlazePose, Person, blazepose_to_mpii, detector_anchors
from emotify_ml.actions.live import ActionPredictor, assign_faces, load_action_predictor
from emotify_ml.data.mpii import load_mpii, sample_mpii_path
from emotify_ml.labels import MPII_CATEGORIES, MPII_JOINTS


def synthetic_blazepose():
    """A standing person, 33 BlazePose landmarks in pixels (x right, y down), facing the camera."""
    lm = np.zeros((33, 2))
    lm[0] = (320, 100)                       # nose
    lm[7], lm[8] = (335, 95), (305, 95)      # left ear (image right), right ear
    lm[11], lm[12] = (360, 150), (280, 150)  # shoulders
    lm[13], lm[14] = (370, 210), (270, 210)  # elbows
    lm[15], lm[16] = (375, 260), (265, 260)  # wrists
    lm[23], lm[24] = (345, 270), (295, 270)  # hips
    lm[25], lm[26] = (345, 350), (295, 350)  # knees
    lm[27], lm[28] = (345, 430), (295, 430)  # ankles
    return lm


def test_blazepose_to_mpii_mapping():
    lm = synthetic_blazepose()
    joints = blazepose_to_mpii(lm)
    j = {name: joints[i] for i, name in enumerate(MPII_JOINTS)}
    for name, b in (("r ankle", 28), ("l knee", 25), ("r hip", 24), ("l wrist", 15), ("r shoulder", 12)):
        assert np.allclose(j[name], lm[b])
    assert np.allclose(j["pelvis"], (320, 270)) and np.allclose(j["thorax"], (320, 150))
    assert np.allclose(j["upper neck"], (320, 122.5)) and np.allclose(j["head top"], (320, 67.5))
    assert j["head top"][1] < j["upper neck"][1] < j["thorax"][1] < j["pelvis"][1]  # upright order
    vis = np.ones(33)
    vis[27] = 0.1
    hidden = blazepose_to_mpii(lm, vis)
    assert np.isnan(hidden[MPII_JOINTS.index("l ankle")]).all()
    assert np.isfinite(np.delete(hidden, MPII_JOINTS.index("l ankle"), 0)).all()


def test_detector_anchors():
    a = detector_anchors()
    assert a.shape == (2254, 2) and a.min() > 0 and a.max() < 1


def test_no_person_returns_nothing():
    pose = BlazePose()
    assert pose(np.zeros((480, 640, 3), np.uint8)) == []
    predictor = load_action_predictor()
    out = predictor.predict(np.full((480, 640, 3), 90, np.uint8), np.array([[300, 100, 60, 60]]),
                            np.full((1, 7), 1 / 7))
    assert out == [None]
    assert set(predictor.last_timings) == {"pose", "action"}
    assert predictor.predict(np.zeros((480, 640, 3), np.uint8), np.zeros((0, 4)), np.zeros((0, 7))) == []


class FakePose:
    """A pose estimator returning one known MPII pose whose body box is (200, 50, 240, 420)."""

    def __init__(self, joints):
        self.joints = joints

    def __call__(self, frame):
        lm = synthetic_blazepose()
        return [Person(self.joints, np.column_stack([lm, np.ones(33)]), np.array([200.0, 50, 240, 420]), 0.99)]


def test_predictor_contract_on_synthetic_frame():
    from emotify_ml.actions.fusion import load_action_prior
    from emotify_ml.models import load_action_model

    joints = load_mpii(sample_mpii_path()).joints[0]
    predictor = ActionPredictor(FakePose(joints), load_action_model(), load_action_prior(),
                                emotion_weight=1.0, min_confidence=0.3)
    frame = np.zeros((480, 640, 3), np.uint8)
    faces = np.array([[290, 70, 60, 60], [10, 10, 40, 40]])  # inside the body, outside
    out = predictor.predict(frame, faces, np.eye(7)[[3, 4]])
    assert out[1] is None
    item = out[0]
    assert set(item) == {"actions", "label", "person_box"} and item["person_box"] == [200.0, 50.0, 240.0, 420.0]
    assert len(item["actions"]) == 3 and all(name in MPII_CATEGORIES for name, _ in item["actions"])
    probs = [p for _, p in item["actions"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9
    assert item["label"] == (item["actions"][0][0] if probs[0] >= 0.3 else "uncertain")
    strict = ActionPredictor(FakePose(joints), predictor.action_model, predictor.prior, min_confidence=1.01)
    assert strict.predict(frame, faces[:1], None)[0]["label"] == "uncertain"


def test_assign_faces_one_face_per_person():
    lm = np.column_stack([synthetic_blazepose(), np.ones(33)])
    people = [Person(np.zeros((16, 2)), lm, np.array([200.0, 50, 240, 420]), 1.0)]
    owner = assign_faces(np.array([[290, 70, 60, 60], [300, 300, 20, 20], [0, 0, 5, 5]]), people)
    assert owner.tolist() == [0, -1, -1]


def test_real_photo_end_to_end(person_photo):
    from emotify_ml.detection import YuNetDetector

    frame = person_photo
    h, w = frame.shape[:2]
    pose = BlazePose()
    people = pose(frame)
    assert len(people) == 1
    j = {name: people[0].joints[i] for i, name in enumerate(MPII_JOINTS)}
    assert j["head top"][1] < j["upper neck"][1] < j["thorax"][1] < j["r elbow"][1]  # upright
    assert j["r shoulder"][0] < j["thorax"][0] < j["l shoulder"][0]  # facing the camera: her right is image left
    visible = np.isfinite(people[0].joints).all(1)
    below_frame = [MPII_JOINTS.index(name) for name in ("r ankle", "l ankle", "r knee", "l knee", "pelvis")]
    assert not visible[below_frame].any()  # BlazePose guesses them below the edge; MPII would not annotate them
    assert (people[0].joints[visible] >= 0).all() and (people[0].joints[visible] < (w, h)).all()
    tracked = pose(frame)  # second frame: the region comes from the landmarks, not the detector
    assert len(tracked) == 1 and np.allclose(tracked[0].box, people[0].box, atol=25)

    faces = YuNetDetector().detect(frame).boxes
    assert len(faces) == 1
    predictor = load_action_predictor()
    out = predictor.predict(frame, faces, np.full((1, 7), 1 / 7))
    assert out[0] is not None and len(out[0]["actions"]) == 3
    assert all(name in MPII_CATEGORIES for name, _ in out[0]["actions"])


class NoisyPose(FakePose):
    """FakePose whose joints jitter by a few pixels each frame, like real keypoints on a still person."""

    def __init__(self, joints, seed=0):
        super().__init__(joints)
        self.base, self.rng = joints, np.random.default_rng(seed)

    def __call__(self, frame):
        self.joints = self.base + self.rng.normal(0, 6.0, self.base.shape)
        return super().__call__(frame)


def test_actions_are_smoothed_per_track():
    from emotify_ml.actions.fusion import load_action_prior
    from emotify_ml.models import load_action_model

    model, prior = load_action_model(), load_action_prior()
    joints = load_mpii(sample_mpii_path()).joints[3]
    frame, face, emotion = np.zeros((480, 640, 3), np.uint8), np.array([[290, 70, 60, 60]]), np.full((1, 7), 1 / 7)

    def run(track_ids):
        predictor = ActionPredictor(NoisyPose(joints), model, prior)
        out = [predictor.predict(frame, face, emotion, track_ids=track_ids)[0] for _ in range(30)]
        return predictor, np.array([[dict(item["actions"]).get(name, 0.0) for name in MPII_CATEGORIES] for item in out])

    _, raw = run(None)
    predictor, smooth = run(np.array([7]))
    assert np.abs(np.diff(smooth, axis=0)).sum() < 0.6 * np.abs(np.diff(raw, axis=0)).sum()
    other = load_mpii(sample_mpii_path()).joints[40]
    predictor = ActionPredictor(FakePose(joints), model, prior)
    for _ in range(5):
        predictor.predict(frame, face, emotion, track_ids=np.array([7]))
    predictor.pose_estimator = FakePose(other)
    mixed = predictor.predict(frame, face, emotion, track_ids=np.array([7]))[0]["actions"]
    predictor.forget([7])  # the track ended: a new face with that id starts afresh
    after = predictor.predict(frame, face, emotion, track_ids=np.array([7]))[0]["actions"]
    alone = ActionPredictor(FakePose(other), model, prior).predict(frame, face, emotion)[0]["actions"]
    assert after == alone and mixed != alone


def test_track_ids_are_checked_and_bodiless_faces_start_afresh():
    import pytest

    from emotify_ml.actions.fusion import load_action_prior
    from emotify_ml.models import load_action_model
    from emotify_ml.exceptions import InputError

    joints = load_mpii(sample_mpii_path()).joints[3]
    predictor = ActionPredictor(FakePose(joints), load_action_model(), load_action_prior())
    frame, emotion = np.zeros((480, 640, 3), np.uint8), np.full((2, 7), 1 / 7)
    faces = np.array([[290, 70, 60, 60], [10, 10, 40, 40]])  # inside the body, outside
    with pytest.raises(InputError, match="one distinct id per face"):
        predictor.predict(frame, faces, emotion, track_ids=np.array([1, 1]))
    with pytest.raises(InputError, match="one distinct id per face"):
        predictor.predict(frame, faces, emotion, track_ids=np.array([1]))
    predictor.predict(frame, faces[:1], emotion[:1], track_ids=np.array([5]))
    assert 5 in predictor.smoothing._state
    predictor.predict(frame, faces[1:], emotion[1:], track_ids=np.array([5]))  # the same face, now without a body
    assert 5 not in predictor.smoothing._state
