"""Live-scoring building blocks on generated frames: alignment, tracking, smoothing, flicker, sources, outputs, overlay."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from emotify_ml.exceptions import InputError, SourceError
from emotify_ml.features.preprocessing import crop_face, crop_faces, eye_angle
from emotify_ml.labels import EMOTIONS
from emotify_ml.live.app import Display, run_live
from emotify_ml.io.frames import Frame, ImageSource, VideoSource, _LiveCaptureSource, open_source
from emotify_ml.io.sinks import JsonlWriter, OutputError, VideoWriter, face_record
from emotify_ml.live.render import draw_faces, draw_status
from emotify_ml.scoring import Faces, FrameStep, Stream
from emotify_ml.scoring.smoothing import FlickerMeter, ProbabilitySmoother
from emotify_ml.io.synthetic import synthetic_frames, write_video
from emotify_ml.scoring.face_tracks import IoUTracker, iou_matrix

from .test_scoring import NoisyClassifier as _NoisyClassifier
from .test_scoring import ScriptedDetector as _ScriptedDetector
from .test_scoring import noisy_steady_proba as _noisy_steady_proba

# --- face alignment (shared preprocessing) ---------------------------------------------------------


def _eyes_frame(angle_deg, size=(480, 640)):
    """A grey frame with two bright 'eyes' 60 px apart on a line tilted by ``angle_deg`` about (320, 240)."""
    frame = np.zeros(size, np.uint8)
    t = np.radians(angle_deg)
    eyes = np.array([[320 - 30 * np.cos(t), 240 - 30 * np.sin(t)], [320 + 30 * np.cos(t), 240 + 30 * np.sin(t)]])
    for x, y in eyes:
        cv2.circle(frame, (int(round(x)), int(round(y))), 4, 255, -1)
    return frame, eyes


def test_eye_angle_sign():
    assert eye_angle([[0, 0], [10, 0]]) == 0.0
    assert eye_angle([[0, 0], [10, 10]]) == pytest.approx(45.0)
    assert eye_angle([[0, 0], [10, -10]]) == pytest.approx(-45.0)


@pytest.mark.parametrize("angle", [-20.0, 12.0, 30.0])
def test_alignment_levels_the_eyes(angle):
    frame, eyes = _eyes_frame(angle)
    box = (270, 190, 100, 100)
    crop = crop_face(frame, box, eyes=eyes)
    assert crop.shape == crop_face(frame, box).shape
    left, right = crop[:, : crop.shape[1] // 2], crop[:, crop.shape[1] // 2:]
    rows = [np.average(np.arange(len(half)), weights=half.sum(1).astype(float)) for half in (left, right)]
    assert abs(rows[0] - rows[1]) < 1.5  # same row once aligned
    tilted = crop_face(frame, box)
    raw = [np.average(np.arange(len(h)), weights=h.sum(1).astype(float))
           for h in (tilted[:, : tilted.shape[1] // 2], tilted[:, tilted.shape[1] // 2:])]
    assert abs(raw[0] - raw[1]) > 10  # and they were not before


def test_level_eyes_give_exactly_the_unaligned_crop():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for box in [(40, 30, 50, 60), (-10, -5, 60, 60), (130, 90, 50, 50)]:  # inside and across the edges
        assert np.array_equal(crop_face(frame, box, eyes=[[50, 50], [70, 50]]), crop_face(frame, box))


def test_crop_faces_with_eyes_and_channels():
    frame, eyes = _eyes_frame(15)
    out = crop_faces(frame, [(270, 190, 100, 100)], eyes=eyes[None])
    assert out.shape == (1, 48, 48) and out.dtype == np.uint8
    bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    assert crop_face(bgr, (270, 190, 100, 100), margin=0.15, eyes=eyes).shape == (130, 130, 3)
    assert crop_face(bgr[..., :1], (270, 190, 100, 100), margin=0.15, eyes=eyes).shape == (130, 130, 1)
    with pytest.raises(InputError, match="one \\(2, 2\\) pair per box"):
        crop_faces(frame, [(270, 190, 100, 100)], eyes=np.zeros((2, 2, 2)))


@pytest.mark.parametrize("margins", [(0.0, -0.05, 0.05), (0.15, 0.1, 0.2), (0.05,)])
def test_views_at_several_margins_are_the_crops_at_each_margin(margins):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    # inside, across the edges, and tiny boxes whose rounding puts a square outside the widest one
    boxes = [(40, 30, 50, 60), (-10, -5, 60, 60), (130, 90, 50, 50), (70.5, 50.5, 3, 3), (71.5, 51.5, 3, 3)]
    views = crop_faces(frame, boxes, margins)
    assert views.shape == (len(boxes), len(margins), 48, 48) and views.dtype == np.uint8
    for k, margin in enumerate(margins):  # unrotated: exactly the crop at that margin
        assert np.array_equal(views[:, k], crop_faces(frame, boxes, margin))
    assert crop_faces(frame, np.zeros((0, 4)), margins).shape == (0, len(margins), 48, 48)


@pytest.mark.parametrize("box", [(270, 190, 100, 100), (271.3, 188.6, 97.4, 121.9), (-20.5, 300.2, 90.1, 110.7)])
def test_rotated_views_are_the_rotated_crop_at_each_margin(box):
    """Every margin's square turns about the box's centre, so each view is a square of the widest rotated crop."""
    frame, eyes = _eyes_frame(15)
    frame = cv2.GaussianBlur(frame, (0, 0), 2)  # a smooth image: any shift of the squares would change grey levels
    margins = (0.0, -0.05, 0.05)
    views = crop_faces(frame, [box], margins, eyes=eyes[None])[0]
    for k, margin in enumerate(margins):
        alone = crop_faces(frame, [box], margin, eyes=eyes[None])[0]
        diff = np.abs(views[k].astype(int) - alone)
        assert diff.max() <= 1 and diff.mean() < 0.05  # OpenCV's fixed-point source coordinates, nothing more


# --- tracking -----------------------------------------------------------------------------------


def test_iou_matrix():
    m = iou_matrix([[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 0, 10, 10], [5, 5, 10, 10], [50, 50, 1, 1]])
    assert m.shape == (2, 3)
    assert m[0, 0] == 1.0 and m[0, 1] == pytest.approx(25 / 175) and m[0, 2] == 0.0 and not m[1].any()


def test_tracker_keeps_ids_through_motion_and_short_misses():
    tracker = IoUTracker(iou_threshold=0.3, max_missed=2)
    a, b = [100, 100, 80, 80], [400, 100, 80, 80]
    assert tracker.update([a, b]).tolist() == [1, 2]
    assert tracker.update([[404, 102, 80, 80], [103, 99, 80, 80]]).tolist() == [2, 1]  # order does not matter
    assert tracker.update([[405, 103, 80, 80]]).tolist() == [2]  # face 1 missed once
    assert tracker.update([[104, 100, 80, 80], [406, 103, 80, 80]]).tolist() == [1, 2]  # and back with its id
    for _ in range(3):
        tracker.update([])
    assert tracker.active_ids == []
    assert tracker.update([a]).tolist() == [3]  # ids are never reused


def test_tracker_matches_greedily_by_overlap():
    tracker = IoUTracker()
    tracker.update([[0, 0, 100, 100]])
    ids = tracker.update([[60, 0, 100, 100], [5, 0, 100, 100]])  # the closer box continues the track
    assert ids.tolist() == [2, 1]


@pytest.mark.parametrize("kwargs", [{"iou_threshold": 0}, {"iou_threshold": 1.5}, {"max_missed": -1}])
def test_tracker_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        IoUTracker(**kwargs)


# --- smoothing and flicker ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ema", "window"])
def test_smoothing_reduces_label_changes(method):
    probas = _noisy_steady_proba()
    raw_meter, meter = FlickerMeter(), FlickerMeter()
    smoother = ProbabilitySmoother(method=method, alpha=0.2, window=10)
    for i, p in enumerate(probas):
        s = smoother.update(7, p)
        meter.update(7, EMOTIONS[p.argmax()], EMOTIONS[s.argmax()], i / 30)
    summary = meter.summary()
    assert summary["raw_changes_per_s"] > 2.0
    assert summary["smoothed_changes_per_s"] < summary["raw_changes_per_s"] / 4
    assert summary["face_seconds"] == pytest.approx(299 / 30, abs=1e-3)
    assert raw_meter.summary()["raw_changes_per_s"] is None  # no time observed


def test_smoother_follows_a_real_change():
    smoother = ProbabilitySmoother(method="ema", alpha=0.3)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    for _ in range(20):
        smoother.update(1, happy)
    labels = [EMOTIONS[smoother.update(1, sad).argmax()] for _ in range(10)]
    assert labels[0] == "happy" and labels[-1] == "sad"
    assert labels.index("sad") <= 3  # about 1 / alpha frames of lag


def test_smoother_keeps_tracks_apart_and_forgets():
    smoother = ProbabilitySmoother(method="window", window=3)
    smoother.update(1, np.eye(7)[0])
    assert np.array_equal(smoother.update(2, np.eye(7)[1]), np.eye(7)[1])
    smoother.forget([1])
    assert np.array_equal(smoother.update(1, np.eye(7)[2]), np.eye(7)[2])
    assert np.array_equal(ProbabilitySmoother(method="none").update(1, np.eye(7)[5]), np.eye(7)[5])


@pytest.mark.parametrize("kwargs", [{"method": "kalman"}, {"alpha": 0.0}, {"alpha": 1.5}, {"window": 0}])
def test_smoother_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ProbabilitySmoother(**kwargs)


# --- sources ------------------------------------------------------------------------------------


class _FakeCapture:
    """A cv2.VideoCapture stand-in: ``n_ok`` frames (None: endless), one per ``period`` s, then read() fails."""

    def __init__(self, n_ok, period=0.0):
        self.n_ok, self.period, self.n_read, self.released = n_ok, period, 0, False

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        self.n_read += 1
        if self.period:
            time.sleep(self.period)
        if self.n_ok is None or self.n_read <= self.n_ok:
            return True, np.full((48, 64, 3), self.n_read, np.uint8)
        return False, None

    def release(self):
        self.released = True


def test_camera_unplugged_mid_run_is_a_clear_error():
    cap = _FakeCapture(n_ok=3)
    source = _LiveCaptureSource(cap, "camera 7", stall_timeout=0.2)
    with pytest.raises(SourceError, match="camera 7 stopped giving frames"):
        for _ in range(10):
            assert source.read(timeout=5) is not None
    source.close()
    assert cap.released


def test_camera_that_never_delivers_is_a_clear_error():
    source = _LiveCaptureSource(_FakeCapture(n_ok=0), "camera 8", stall_timeout=0.2)
    with pytest.raises(SourceError, match="opened but gives no frames"):
        source.read(timeout=5)
    source.close()


def test_live_source_keeps_only_the_newest_frame():
    source = _LiveCaptureSource(_FakeCapture(n_ok=None, period=0.002), "camera 9", stall_timeout=5).start()
    time.sleep(0.3)  # the consumer is slow: frames pile up at the camera (which never stalls here)
    frame = source.read(timeout=5)
    source.close()
    assert frame.index > 10  # old frames were dropped, not queued


def test_video_source_delivers_every_frame_in_order(tmp_path):
    path = write_video(tmp_path / "v.avi", (np.full((64, 80, 3), i * 10, np.uint8) for i in range(12)), fps=12)
    with open_source(path) as source:
        assert isinstance(source, VideoSource) and source.fps == pytest.approx(12)
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert frames[6].timestamp == pytest.approx(0.5)


def test_image_folder_source_skips_unreadable_files(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((40, 50), 60 * i, np.uint8))
    (tmp_path / "img1b.jpg").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(tmp_path) as source:
        assert isinstance(source, ImageSource) and source.independent
        frames = list(source)
    assert [f.name for f in frames] == ["img0.png", "img1.png", "img2.png"]
    assert frames[0].image.shape == (40, 50, 3)
    assert "img1b.jpg" in caplog.text


def _file(folder, name, data):
    (folder / name).write_bytes(data)
    return folder / name


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.mp4", "does not exist"),
    (lambda p: _file(p, "empty.mp4", b""), "empty"),
    (lambda p: _file(p, "bad.mp4", b"\x00" * 100), "cannot read"),
    (lambda p: _file(p, "bad.png", b"png?"), "not an image"),
    (lambda p: (p / "d").mkdir() or p / "d", "holds no image"),
])
def test_bad_sources_fail_clearly(tmp_path, make, match):
    with pytest.raises(SourceError, match=match):
        open_source(make(tmp_path))


# --- outputs and overlay ------------------------------------------------------------------------


def _result(n_faces=1, actions=None):
    p = np.eye(7)[3] * 0.7 + 0.3 / 7
    return Faces(np.array([[100.0 + 300 * k, 100, 150, 180] for k in range(n_faces)]), np.full(n_faces, 0.9), None,
                 ("detector",) * n_faces, np.tile(p, (n_faces, 1)), track_ids=np.arange(1, n_faces + 1),
                 smoothed=np.tile(p, (n_faces, 1)), actions=[actions] * n_faces, index=4, timestamp=0.1333,
                 timings={"detect": 3.0, "classify": 1.0})


def test_jsonl_record_has_everything_per_face(tmp_path):
    writer = JsonlWriter(tmp_path / "r.jsonl")
    writer.write(_result(2, actions={"actions": [["walking", np.float32(0.5)]], "label": "walking",
                                     "person_box": [1, 2, 3, 4]}))
    writer.close()
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    rec = lines[0]
    assert rec["frame"] == 4 and rec["timestamp"] == 0.1333 and rec["track_id"] == 1
    assert rec["box"] == [100.0, 100.0, 150.0, 180.0] and rec["label"] == "happy"
    assert list(rec["probabilities"]) == list(EMOTIONS) and sum(rec["smoothed"].values()) == pytest.approx(1, abs=1e-3)
    assert rec["actions"]["actions"] == [["walking", 0.5]]
    assert "actions" not in face_record(_result(), _result()[0])


def test_outputs_fail_clearly(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        JsonlWriter(tmp_path / "nope" / "r.jsonl")
    with pytest.raises(OutputError, match="unsupported video type"):
        VideoWriter(tmp_path / "out.gif")
    with pytest.raises(OutputError, match="is a folder"):
        VideoWriter(tmp_path)


def test_video_writer_letterboxes_other_sizes(tmp_path):
    writer = VideoWriter(tmp_path / "out.avi", fps=10)
    writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.write(np.full((300, 100, 3), 200, np.uint8))
    writer.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    ok, frame = cap.read()
    assert ok and frame.shape == (120, 160, 3) and writer.n_frames == 2


def test_overlay_draws_faces_actions_and_status():
    image = np.zeros((480, 640, 3), np.uint8)
    draw_faces(image, _result(2, actions={"actions": [["dancing", 0.6], ["sports", 0.2]], "label": "dancing",
                                          "person_box": [50, 50, 300, 420]}))
    draw_status(image, 31.4, {"detect": 4.2, "classify": 1.1}, 2)
    assert image.any()
    edge = np.zeros((100, 100, 3), np.uint8)  # faces at the border: drawing is clipped, never fails
    draw_faces(edge, Faces(np.array([[80.0, -10, 60, 60]]), np.ones(1), None, ("detector",), np.ones((1, 7)) / 7))


def test_display_without_a_screen_fails_clearly(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(OutputError, match="--no-display"):
        Display()


# --- the loop -----------------------------------------------------------------------------------


class _ListSource:
    live = False
    independent = False
    fps = 30.0
    kind = "video"

    def __init__(self, frames):
        self.frames = list(frames)
        self.closed = False

    def read(self, timeout=None):
        return self.frames.pop(0) if self.frames else None

    def close(self):
        self.closed = True


def _stream(boxes, n_probas):
    return Stream(FrameStep(_NoisyClassifier(_noisy_steady_proba(n_probas)), _ScriptedDetector(boxes)))


def test_interrupt_stops_cleanly_and_flushes_outputs(tmp_path):
    frames = [Frame(i, i / 30, f) for i, f in enumerate(synthetic_frames([np.full((48, 48), 128, np.uint8)],
                                                                         frames_per_face=20))]
    source = _ListSource(frames)
    scorer = _stream([[245, 145, 150, 150]], 20)
    jsonl, video = JsonlWriter(tmp_path / "r.jsonl"), VideoWriter(tmp_path / "a.avi", fps=30)

    def interrupt_at_frame_5(result):
        if result.index == 5:
            raise KeyboardInterrupt

    summary = run_live(source, scorer, jsonl=jsonl, video=video, on_result=interrupt_at_frame_5)
    assert summary.stopped_by == "interrupt" and source.closed
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 6  # frames 0..5, flushed
    assert cv2.VideoCapture(str(tmp_path / "a.avi")).read()[0]


def test_run_summary_reports_fps_stages_and_flicker():
    frames = [Frame(i, i / 30, np.zeros((240, 320, 3), np.uint8)) for i in range(30)]
    scorer = _stream([[100, 60, 100, 100]], 40)
    summary = run_live(_ListSource(frames), scorer, max_frames=25)
    assert summary.frames == 25 and summary.faces == 25 and summary.stopped_by == "max_frames"
    assert summary.fps > 0 and {"detect", "crop", "classify", "draw", "total"} <= set(summary.stage_ms)
    assert summary.flicker["raw_changes"] >= summary.flicker["smoothed_changes"]


class _FakeDisplay:
    """Stands in for the window: records the wait of each frame and presses q at ``quit_at``."""

    def __init__(self, quit_at):
        self.quit_at, self.waits, self.closed, self.was_closed = quit_at, [], False, False

    def show(self, image, wait_ms=1):
        self.waits.append(wait_ms)
        return ord("q") if len(self.waits) == self.quit_at else -1

    def close(self):
        self.was_closed = True


def test_q_in_the_window_stops_cleanly():
    frames = [Frame(i, i / 30, np.zeros((240, 320, 3), np.uint8)) for i in range(30)]
    display = _FakeDisplay(quit_at=3)
    scorer = _stream([[100, 60, 100, 100]], 40)
    summary = run_live(_ListSource(frames), scorer, display=display)
    assert summary.stopped_by == "user" and summary.frames == 3 and display.was_closed
    assert display.waits == [1, 1, 1]  # a video does not wait for keys


def test_images_wait_for_a_key_in_the_window():
    source = _ListSource([Frame(i, 0.0, np.zeros((240, 320, 3), np.uint8), f"{i}.jpg") for i in range(2)])
    source.independent = True
    display = _FakeDisplay(quit_at=99)
    run_live(source, _stream(np.zeros((0, 4)), 2), display=display)
    assert display.waits == [0, 0]


def test_realtime_pacing_plays_a_video_at_its_frame_rate():
    frames = [Frame(i, i / 30, np.zeros((120, 160, 3), np.uint8)) for i in range(10)]
    scorer = _stream(np.zeros((0, 4)), 2)
    summary = run_live(_ListSource(frames), scorer, pace=True)
    assert summary.seconds >= 9 / 30 * 0.95
