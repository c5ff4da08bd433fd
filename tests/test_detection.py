"""Face detection: YuNet and Haar on frames made from bundled FER-2013 sample faces."""

from __future__ import annotations

import hashlib
import re

import cv2
import numpy as np
import pytest

from emotify_ml.detection import YUNET_MODEL, Detections, HaarDetector, YuNetDetector, make_detector
from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.io.synthetic import synthetic_frames


@pytest.fixture(scope="module")
def yunet():
    return make_detector("yunet")


@pytest.fixture(scope="module")
def clear_faces(sample_data, yunet):
    """Sample test faces that YuNet finds with a high score once pasted at 200 px."""
    faces = sample_data.split("PrivateTest").images
    keep = [f for f in faces[:40] if _single_score(yunet, f) >= 0.85]
    assert len(keep) >= 8
    return np.stack(keep)


def _single_score(detector, face):
    found = detector.detect(next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0)))
    return float(found.scores.max()) if len(found) else 0.0


def _frame(faces, **kw):
    kw.setdefault("frames_per_face", 1)
    return next(synthetic_frames(faces, n_per_frame=len(faces), jitter=0, **kw))


def test_yunet_finds_one_face_where_it_was_pasted(yunet, clear_faces):
    found = yunet.detect(_frame(clear_faces[:1]))
    assert len(found) == 1
    assert found.boxes.shape == (1, 4) and found.boxes.dtype == np.float32
    assert found.landmarks.shape == (1, 5, 2)
    x, y, w, h = found.boxes[0]
    cx, cy = x + w / 2, y + h / 2
    assert abs(cx - 320) < 40 and abs(cy - 240) < 40  # pasted at the centre of the 640x480 frame
    assert 100 < w < 260
    right_eye, left_eye = found.eyes[0]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert 0.85 <= found.scores[0] <= 1.0


def test_yunet_finds_every_face_of_a_frame(yunet, clear_faces):
    found = yunet.detect(_frame(clear_faces[:3], face_px=160))
    assert len(found) == 3
    assert np.all(np.diff(np.sort(found.boxes[:, 0])) > 100)  # three separate boxes


def test_no_face_gives_empty_arrays(yunet):
    found = yunet.detect(np.full((480, 640, 3), 90, np.uint8))
    assert len(found) == 0
    assert found.boxes.shape == (0, 4) and found.scores.shape == (0,) and found.landmarks.shape == (0, 5, 2)


def test_detection_size_changes_speed_not_coordinates(clear_faces):
    frame = _frame(clear_faces[:1], size=(1280, 960), face_px=400)
    small = make_detector("yunet", det_size=320).detect(frame)
    full = make_detector("yunet", det_size=None).detect(frame)
    assert len(small) == len(full) == 1
    assert np.allclose(small.boxes, full.boxes, atol=0.1 * full.boxes[0, 2])  # both in full-frame pixels


def test_grey_and_bgra_frames_are_accepted(yunet, clear_faces):
    frame = _frame(clear_faces[:1])
    assert len(yunet.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))) == 1
    assert len(yunet.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))) == 1


def test_score_threshold_filters(clear_faces):
    frame = _frame(clear_faces[:1])
    assert len(make_detector("yunet", score_threshold=0.5).detect(frame)) == 1
    assert len(make_detector("yunet", score_threshold=0.999).detect(frame)) == 0


def test_haar_fallback_finds_faces_without_landmarks(sample_data):
    haar = make_detector("haar")
    faces = sample_data.split("PrivateTest").images[:20]
    hits = [haar.detect(_frame([f])) for f in faces]
    found = [h for h in hits if len(h) == 1]
    assert len(found) >= 5
    assert all(h.landmarks is None and h.eyes is None and np.all(h.scores == 1.0) for h in found)
    assert isinstance(haar, HaarDetector)


def test_haar_without_opencv_cascades_fails_clearly(monkeypatch):
    monkeypatch.delattr(cv2, "data", raising=False)
    with pytest.raises(ModelNotFoundError, match="haarcascades"):
        make_detector("haar")


def _looks(detector, monkeypatch):
    """The ``det_size`` of each look ``detector`` takes, appended as it takes them."""
    sizes, look = [], detector._look

    def spy(frame, det_size, which):
        sizes.append(det_size)
        return look(frame, det_size, which)

    monkeypatch.setattr(detector, "_look", spy)
    return sizes


def test_a_second_finer_look_finds_faces_that_shrinking_lost(clear_faces):
    """An HD frame with 120 px faces: shrunk to 320 px they are 30 px and mostly lost; at 640 px, 60 px and found."""
    one, two = YuNetDetector(retry_size=None), YuNetDetector(retry_size=640)
    found_once = found_twice = 0
    for face in clear_faces:
        frame = next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0, size=(1280, 960), face_px=120))
        first, both = one.detect(frame), two.detect(frame)
        found_once += len(first) > 0
        found_twice += len(both) > 0
        if len(both):
            x, y, w, h = both.boxes[0]  # in the frame's own pixels: the face was pasted at (580, 420), 120 px
            assert abs(x + w / 2 - 640) < 30 and abs(y + h / 2 - 480) < 30 and 80 < w < 160
            assert both.landmarks.shape == (1, 5, 2) and both.scores[0] >= one.score_threshold
        if len(first):  # a face the first look found is kept as it is
            assert len(both) == 1 and np.allclose(both.boxes, first.boxes)
    assert found_twice >= found_once + len(clear_faces) // 4, (found_once, found_twice)


def test_the_second_look_is_taken_only_for_a_frame_without_a_confident_face(clear_faces, monkeypatch):
    detector = YuNetDetector(score_threshold=0.3, retry_below=0.6)
    looks = _looks(detector, monkeypatch)
    assert len(detector.detect(_frame(clear_faces[:1]))) == 1 and looks == [320]  # a confident face: one look
    looks.clear()
    assert len(detector.detect(np.full((480, 640, 3), 90, np.uint8))) == 0 and looks == [320, 640]
    looks.clear()
    detector.detect(np.full((240, 320, 3), 90, np.uint8))  # no bigger than det_size: its finest look was the first
    assert looks == [320]
    for settings in ({"retry_size": None}, {"det_size": None}, {"det_size": 640, "retry_size": 640}):
        detector = YuNetDetector(**settings)
        looks = _looks(detector, monkeypatch)
        detector.detect(np.full((960, 1280, 3), 90, np.uint8))
        assert len(looks) == 1, settings


def _found(boxes, scores):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    eyes = np.repeat(boxes[:, None, :2], 5, axis=1)  # landmarks that say which box they belong to
    return Detections(boxes, np.asarray(scores, np.float32), eyes)


@pytest.mark.parametrize("first, retry, expected_scores", [
    (([[100, 100, 80, 80]], [0.45]), ([[102, 98, 84, 84]], [0.40]), [0.45]),  # the retry scores lower: first kept
    (([], []), ([[102, 98, 84, 84]], [0.50]), [0.50]),  # the first found nothing
    # the retry wins; the first look's other faint face, which no retry face overlaps, is kept after it
    (([[100, 100, 80, 80], [400, 100, 60, 60]], [0.45, 0.35]), ([[102, 98, 84, 84]], [0.80]), [0.80, 0.35]),
    # ... and one that a retry face overlaps is not reported twice
    (([[100, 100, 80, 80]], [0.45]), ([[102, 98, 84, 84], [400, 100, 60, 60]], [0.80, 0.70]), [0.80, 0.70]),
])
def test_the_look_whose_best_face_scores_higher_is_returned_with_the_other_looks_own_faces(
        monkeypatch, first, retry, expected_scores):
    detector = YuNetDetector(score_threshold=0.3, retry_below=0.6)
    looks = {320: _found(*first), 640: _found(*retry)}
    monkeypatch.setattr(detector, "_look", lambda frame, det_size, which: looks[det_size])
    found = detector.detect(np.zeros((480, 640, 3), np.uint8))
    assert found.scores.tolist() == pytest.approx(expected_scores)
    assert np.array_equal(found.landmarks[:, 0], found.boxes[:, :2])  # each face keeps its own landmarks


def test_the_options_retry_below_the_score_threshold():
    from emotify_ml.scoring.options import DetectorOptions

    made = DetectorOptions().make()
    assert (made.score_threshold, made.retry_below, made.retry_size) == (0.3, 0.6, 640)
    assert DetectorOptions(retry_size=0).make().retry_size is None


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kind": "mtcnn"}, ValueError, "kind must be one of yunet, haar"),
    ({"det_size": 10}, ValueError, "det_size"),
    ({"retry_size": 10}, ValueError, "retry_size must be an int >= 32"),
    ({"retry_below": 1.5}, ValueError, "retry_below must be in"),
    ({"retry_below": True}, ValueError, "retry_below must be in"),
    ({"score_threshold": 2.0}, ValueError, "score_threshold"),
    ({"model_path": "/nonexistent/yunet.onnx"}, ModelNotFoundError, "does not exist"),
])
def test_bad_detector_settings_fail_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_detector(**kwargs)


def test_corrupt_model_file_fails_clearly(tmp_path):
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelNotFoundError, match="cannot load YuNet"):
        YuNetDetector(bad)


@pytest.mark.parametrize("frame", [np.zeros((480, 640, 3), np.float32), np.zeros((4, 4, 3), np.uint8),
                                   np.zeros((480, 640, 2), np.uint8)])
def test_bad_frames_fail_clearly(yunet, frame):
    with pytest.raises(InputError, match="frame must be"):
        yunet.detect(frame)


def test_empty_detections():
    assert len(Detections.empty()) == 0 and Detections.empty(with_landmarks=False).eyes is None


def test_vendored_model_matches_its_readme():
    readme = (YUNET_MODEL.parent / "README.md").read_text()
    digest = hashlib.sha256(YUNET_MODEL.read_bytes()).hexdigest()
    assert digest in readme
    assert re.search(r"MIT", readme) and "Shiqi Yu" in (YUNET_MODEL.parent / "LICENSE").read_text()


def test_haar_reports_a_face_once():
    from emotify_ml.detection import _drop_nested

    boxes = np.array([[106, 64, 85, 85], [124, 96, 71, 71], [300, 50, 40, 40]], np.float32)
    assert _drop_nested(boxes).tolist() == [[106, 64, 85, 85], [300, 50, 40, 40]]


def test_boxes_off_the_frame_are_dropped():
    """YuNet can place a box wholly off a small photo (seen on a 31x40 one): no crop can be cut from it."""
    from emotify_ml.detection import _overlaps_frame

    boxes = np.array([[46.5, 19.5, 7.8, 28.1], [0, 0, 10, 10], [-8, -8, 10, 10], [25, 30, 10, 12], [5, 5, 0, 9]])
    assert _overlaps_frame(boxes, 31, 40).tolist() == [False, True, False, True, False]


def test_yunet_enlarges_thumbnails(yunet, clear_faces):
    """A 40 px photo filled by one face: found (enlarged to YUNET_MIN_SIDE first), in the photo's own pixels."""
    import cv2

    for face in clear_faces[:6]:  # at 40 px, YuNet alone misses some of these
        frame = next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0))  # face at (220, 140), 200 px
        photo = cv2.resize(frame[120:360, 200:440], (40, 40), interpolation=cv2.INTER_AREA)  # the face + a margin
        found = yunet.detect(photo)
        assert len(found) == 1
        x, y, w, h = found.boxes[0]
        assert -2 < x < 10 and -2 < y < 12 and 20 < w < 42 and 25 < h < 44
