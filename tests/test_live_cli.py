"""``python -m emotify_ml.live`` end to end, on a short video and images made from bundled sample faces.

No camera is needed, except for the tests marked ``camera`` (run with ``-m camera``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from emotify_ml.detection import make_detector
from emotify_ml.labels import EMOTIONS
from emotify_ml.live.__main__ import EXIT_MODEL, EXIT_OK, EXIT_OUTPUT, EXIT_SOURCE, main
from emotify_ml.io.synthetic import synthetic_frames, write_video

N_FACES, FRAMES_PER_FACE = 4, 15


@pytest.fixture(scope="module")
def model_dir(sample_data, tmp_path_factory):
    """A tiny HOG + logistic-regression emotion model, saved as an MLflow pyfunc model folder."""
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.models import write_pyfunc
    from emotify_ml.pipeline import build_pipeline

    train = sample_data.split("Training")
    pipeline = build_pipeline(features={"hog": HOGTransformer()}, classifier=LogisticRegression(C=0.1, max_iter=300))
    pipeline.fit(train.images, train.labels)
    return write_pyfunc(pipeline, kind="emotion", path=tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def clear_faces(sample_data):
    """Sample test faces that YuNet finds with a high score once pasted at 200 px."""
    yunet = make_detector("yunet")
    keep = []
    for face in sample_data.split("PrivateTest").images[:40]:
        found = yunet.detect(next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0)))
        if len(found) and found.scores.max() >= 0.85:
            keep.append(face)
    return np.stack(keep[:8])


@pytest.fixture(scope="module")
def clip(clear_faces, tmp_path_factory):
    """A 640x480, 30 FPS video: N_FACES sample faces, each held FRAMES_PER_FACE frames, with jitter and noise."""
    path = tmp_path_factory.mktemp("clip") / "faces.avi"
    return write_video(path, synthetic_frames(clear_faces[:N_FACES], frames_per_face=FRAMES_PER_FACE), fps=30)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_headless_run_on_a_video_writes_jsonl_annotated_video_and_summary(model_dir, clip, tmp_path, capsys):
    out, jsonl, summary = tmp_path / "annotated.mp4", tmp_path / "results.jsonl", tmp_path / "summary.json"
    code = main(["--source", str(clip), "--model", str(model_dir), "--no-display", "--output", str(out),
                 "--jsonl", str(jsonl), "--summary-json", str(summary)])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert f"model: {model_dir}" in err and "video faces.avi" in err
    assert "views: margin 0.0 -/+ 0.05, mirrored (6 crops a face)" in err

    n_frames = N_FACES * FRAMES_PER_FACE
    lines = _lines(jsonl)
    assert len(lines) >= 0.9 * n_frames  # one line per face per frame; YuNet may miss a noisy frame
    first = lines[0]
    keys = {"frame", "timestamp", "track_id", "box", "score", "probabilities", "smoothed", "label", "raw_label"}
    assert keys <= set(first)
    assert list(first["probabilities"]) == list(EMOTIONS) and first["label"] in EMOTIONS
    assert lines[-1]["frame"] == n_frames - 1 and lines[-1]["timestamp"] == pytest.approx((n_frames - 1) / 30, abs=1e-3)
    assert len({line["track_id"] for line in lines}) <= N_FACES + 2  # one track per face, give or take a miss
    x, y, w, h = first["box"]
    assert abs(x + w / 2 - 320) < 40 and abs(y + h / 2 - 240) < 40

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n_frames
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)

    stats = json.loads(summary.read_text())
    assert stats["frames"] == n_frames and stats["fps"] > 0 and stats["stopped_by"] == "end"
    assert {"detect", "crop", "embed", "classify", "track", "draw"} <= set(stats["stage_ms"])
    assert stats["flicker"]["smoothed_changes"] <= stats["flicker"]["raw_changes"]


def test_smoothing_reduces_label_changes_on_the_video(model_dir, clip, tmp_path):
    rates = {}
    for method in ("none", "ema"):
        summary = tmp_path / f"{method}.json"
        assert main(["--source", str(clip), "--model", str(model_dir), "--no-display", "-q", "--smoothing", method,
                     "--alpha", "0.2", "--summary-json", str(summary)]) == EXIT_OK
        rates[method] = json.loads(summary.read_text())["flicker"]
    assert rates["none"]["raw_changes"] == rates["none"]["smoothed_changes"]
    assert rates["ema"]["smoothed_changes"] < rates["ema"]["raw_changes"]


def test_folder_of_images_scores_each_image(model_dir, clear_faces, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, frame in enumerate(synthetic_frames(clear_faces[:3], frames_per_face=1)):
        cv2.imwrite(str(folder / f"p{i}.jpg"), frame)
    (folder / "broken.jpg").write_bytes(b"nope")
    jsonl = tmp_path / "r.jsonl"
    assert main(["--source", str(folder), "--model", str(model_dir), "--no-display", "-q", "--jsonl", str(jsonl),
                 "--detector", "yunet"]) == EXIT_OK
    lines = _lines(jsonl)
    assert [line["image"] for line in lines] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    # unrelated pictures are not smoothed together
    assert all(line["probabilities"] == line["smoothed"] for line in lines)


def test_one_crop_a_face_on_request(model_dir, clear_faces, tmp_path, capsys):
    """``--crop-spread 0 --no-mirror``: each face is the one crop at --margin, as the model scores it by itself."""
    from emotify_ml.features.preprocessing import crop_faces
    from emotify_ml.models import load_emotion_model

    frame = next(synthetic_frames(clear_faces[:1], frames_per_face=1))
    cv2.imwrite(str(tmp_path / "p.png"), frame)
    jsonl = tmp_path / "r.jsonl"
    assert main(["--source", str(tmp_path / "p.png"), "--model", str(model_dir), "--no-display", "--jsonl", str(jsonl),
                 "--crop-spread", "0", "--no-mirror"]) == EXIT_OK
    assert "views: margin 0.0 (1 crop a face)" in capsys.readouterr().err
    (line,) = _lines(jsonl)
    found = make_detector("yunet").detect(frame)
    crop = crop_faces(frame, found.boxes[:1], 0.0, eyes=found.eyes[:1])
    expected = load_emotion_model(str(model_dir)).predict_proba(crop)[0]
    np.testing.assert_allclose(list(line["probabilities"].values()), expected, atol=1e-5)  # the JSONL keeps 5 decimals


def test_single_image_with_haar_detector(model_dir, clear_faces, tmp_path):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), next(synthetic_frames(clear_faces[3:4], frames_per_face=1, noise=0)))
    jsonl = tmp_path / "r.jsonl"
    code = main(["--source", str(image), "--model", str(model_dir), "--no-display", "-q", "--jsonl", str(jsonl),
                 "--detector", "haar", "--no-align"])
    assert code == EXIT_OK
    assert len(_lines(jsonl)) <= 1


@pytest.mark.parametrize("args, code, message", [
    (["--source", "{tmp}/missing.mp4"], EXIT_SOURCE, "does not exist"),
    (["--source", "{tmp}/garbage.mp4"], EXIT_SOURCE, "cannot read"),
    (["--source", "{tmp}/garbage.jpg"], EXIT_SOURCE, "not an image"),
    (["--source", "99"], EXIT_SOURCE, "no camera at index 99"),
    (["--source", "{clip}", "--model", "{tmp}/no_model"], EXIT_MODEL, "no_model"),
    (["--source", "{clip}", "--model", "runs:/0123456789abcdef/model", "--tracking-uri", "sqlite:///{tmp}/db.sqlite"],
     EXIT_MODEL, "cannot load model"),
    (["--source", "{clip}", "--output", "{tmp}/nowhere/out.mp4"], EXIT_OUTPUT, "does not exist"),
])
def test_bad_sources_models_and_outputs_fail_with_one_clear_line(args, code, message, model_dir, clip, tmp_path, capsys):
    (tmp_path / "garbage.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "garbage.jpg").write_bytes(b"\x00" * 64)
    argv = [a.format(tmp=tmp_path, clip=clip) for a in args] + ["--no-display"]
    if "--model" not in argv:
        argv += ["--model", str(model_dir)]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0]


def test_no_default_model_says_what_to_do(clip, tmp_path, capsys, monkeypatch):
    import emotify_ml.models.kinds

    monkeypatch.setattr(emotify_ml.models.kinds, "SHIPPED_DIR", tmp_path / "no_shipped_model")
    code = main(["--source", str(clip), "--no-display", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert code == EXIT_MODEL
    assert "pass an MLflow model URI or a model folder" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # looking for a champion created no store


def test_bad_option_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--alpha", "0", "--no-display"])
    assert exit_info.value.code == 2 and "alpha must be in (0, 1]" in capsys.readouterr().err


def test_the_module_runs_as_a_program_and_exits_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emotify_ml.live", "--source", str(tmp_path / "nothing.mp4"),
                           "--no-display"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_SOURCE
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr


class _FakeActionPredictor:
    """Stands in for emotify_ml.actions.live (built separately) with its documented interface."""

    def __init__(self):
        self.last_timings = {}
        self.calls = []

    def predict(self, frame_bgr, face_boxes, emotion_proba, track_ids=None):
        self.calls.append((face_boxes.shape, emotion_proba.shape, track_ids))
        self.last_timings = {"pose": 1.5, "classify": 0.5}
        return [{"actions": [["dancing", 0.6], ["running", 0.3], ["walking", 0.1]], "label": "dancing",
                 "person_box": [float(b[0]) - 20, float(b[1]), float(b[2]) + 40, 400.0]} if i % 2 == 0 else None
                for i, b in enumerate(face_boxes)]


def test_actions_flag_adds_actions_to_overlay_and_jsonl(model_dir, clip, tmp_path, monkeypatch):
    predictor = _FakeActionPredictor()
    fake = types.ModuleType("emotify_ml.actions.live")
    fake.load_action_predictor = lambda **kwargs: predictor
    monkeypatch.setitem(sys.modules, "emotify_ml.actions.live", fake)
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    assert main(["--source", str(clip), "--model", str(model_dir), "--no-display", "-q", "--actions",
                 "--jsonl", str(jsonl), "--summary-json", str(summary), "--max-frames", "10",
                 "--output", str(tmp_path / "a.mp4")]) == EXIT_OK
    lines = _lines(jsonl)
    assert lines and all(line["actions"]["label"] == "dancing" for line in lines)
    assert all(boxes[1] == 4 and emotions[1] == 7 and len(ids) == boxes[0] for boxes, emotions, ids in predictor.calls)
    stage_ms = json.loads(summary.read_text())["stage_ms"]
    assert {"actions", "actions.pose"} <= set(stage_ms)


def test_actions_on_a_real_photo_with_the_shipped_action_model(model_dir, person_photo, tmp_path):
    """The real --actions path (BlazePose, the shipped action model, fusion) on a photograph of a person."""
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), person_photo)
    jsonl = tmp_path / "r.jsonl"
    assert main(["--source", str(photo), "--model", str(model_dir), "--no-display", "-q", "--actions",
                 "--jsonl", str(jsonl), "--output", str(tmp_path / "annotated.mp4")]) == EXIT_OK
    (line,) = _lines(jsonl)
    actions = line["actions"]
    assert actions is not None, "the face should belong to the detected body"
    x, y, w, h = line["box"]
    px, py, pw, ph = actions["person_box"]
    assert px <= x + w / 2 <= px + pw and py <= y + h / 2 <= py + ph
    assert len(actions["actions"]) == 3 and sum(p for _, p in actions["actions"]) <= 1 + 1e-9
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


def test_actions_flag_without_the_action_module_fails_clearly(model_dir, clip, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "emotify_ml.actions.live", None)  # import fails
    assert main(["--source", str(clip), "--model", str(model_dir), "--no-display", "--actions"]) == EXIT_MODEL
    assert "--actions needs the action predictor" in capsys.readouterr().err


@pytest.mark.camera
def test_real_camera_headless(model_dir, tmp_path):
    jsonl = tmp_path / "cam.jsonl"
    summary = tmp_path / "cam.json"
    assert main(["--source", "0", "--model", str(model_dir), "--no-display", "--max-frames", "30",
                 "--jsonl", str(jsonl), "--summary-json", str(summary)]) == EXIT_OK
    assert json.loads(summary.read_text())["frames"] == 30


@pytest.mark.camera
def test_real_camera_source_delivers_frames():
    from emotify_ml.io.frames import open_source

    with open_source(0) as camera:
        frames = [camera.read(timeout=5) for _ in range(5)]
    assert all(f is not None and f.image.ndim == 3 for f in frames)
    assert [f.timestamp for f in frames] == sorted(f.timestamp for f in frames)
