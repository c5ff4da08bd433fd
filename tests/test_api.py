"""``emotify_ml.analyze`` and ``emotify_ml.analyze_video`` on bundled pictures: what a newcomer types first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import emotify_ml
from emotify_ml.exceptions import InputError
from emotify_ml.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "fer2013_sample" / "test"


@pytest.fixture(scope="module")
def model_dir(hog_model_dir):
    """A tiny HOG + logistic regression emotion model folder (``hog_model_dir`` of conftest)."""
    return hog_model_dir


@pytest.fixture(scope="module")
def model(model_dir):
    from emotify_ml.models import load_emotion_model

    return load_emotion_model(model_dir)


def test_importing_the_package_loads_nothing_heavy():
    code = ("import sys, emotify_ml; assert callable(emotify_ml.analyze) and callable(emotify_ml.analyze_video); "
            "import emotify_ml as e; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip() == "ok"
    heavy = subprocess.run([sys.executable, "-c", "import sys, emotify_ml; print(sorted(m for m in sys.modules "
                            "if m.split('.')[0] in ('cv2', 'sklearn', 'pandas', 'mlflow', 'tensorflow', 'emotify_ml')))"],
                           capture_output=True, text=True, timeout=120)
    assert heavy.stdout.strip() == "['emotify_ml']"


def test_analyze_a_cropped_face_file_scores_it_whole(model_dir):
    """A 48x48 FER-2013 crop in which the detector finds no face is one whole face under ``detect="auto"``."""
    from emotify_ml.detection import make_detector

    yunet = make_detector("yunet")
    path = next(p for p in sorted(SAMPLE.glob("*/*.jpg")) if not len(yunet.detect(cv2.imread(str(p)))))
    (face,) = emotify_ml.analyze(path, model=model_dir)
    assert face.source == "whole_image" and face.box.tolist() == [0, 0, 48, 48] and face.landmarks is None
    assert list(face.probabilities) == list(EMOTIONS) and sum(face.probabilities.values()) == pytest.approx(1)
    assert face.label == max(face.probabilities, key=face.probabilities.get) and face.actions is None
    assert emotify_ml.analyze(path, model=model_dir, detect="always") == []


def test_analyze_a_photo_array_bytes_and_path_agree(model, person_photo, tmp_path):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), person_photo)
    from_array = emotify_ml.analyze(person_photo, model=model)
    (face,) = from_array
    assert face.source == "detector" and face.landmarks.shape == (5, 2) and 0 < face.score <= 1
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the astronaut's face
    for other in (emotify_ml.analyze(path, model=model), emotify_ml.analyze(path.read_bytes(), model=model)):
        assert other[0].probabilities == pytest.approx(face.probabilities, abs=1e-12)
    assert face.to_record()["probabilities"] == face.probabilities


def test_analyze_with_actions(model, person_photo):
    (face,) = emotify_ml.analyze(person_photo, model=model, actions=True)
    assert face.actions is not None and len(face.actions["actions"]) == 3 and "person_box" in face.actions


def test_analyze_bad_input_is_one_clear_error(model, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="not an image"):
        emotify_ml.analyze(tmp_path / "x.jpg", model=model)
    with pytest.raises(InputError, match="uint8"):
        emotify_ml.analyze(np.zeros((10, 10), np.float32), model=model)


def test_analyze_video_one_row_per_face_per_frame(model, tmp_path):
    from emotify_ml.io.synthetic import synthetic_frames, write_video

    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(SAMPLE.glob("*/*.jpg"))[:2]]
    clip = write_video(tmp_path / "clip.avi", synthetic_frames(faces, frames_per_face=6), fps=10)
    table = emotify_ml.analyze_video(clip, model=model, stride=3, start=2, end=11)
    assert list(table.columns) == ["frame", "time_s", "face", "track_id", "x", "y", "w", "h", "score", *EMOTIONS,
                                   "label"]
    assert set(table.frame) <= {3, 6, 9} and len(table) >= 2 and (table.face == 0).all()
    np.testing.assert_allclose(table.time_s, table.frame / 10)
    np.testing.assert_allclose(table[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-6)
    assert (table.label == table[list(EMOTIONS)].idxmax(axis=1)).all()
    empty = emotify_ml.analyze_video(clip, model=model, start=0, end=1, detect="always",
                                     options=None)  # the same columns when a range holds no face, or one
    assert list(empty.columns) == list(table.columns)
    with pytest.raises(InputError, match="not a video"):
        emotify_ml.analyze_video(tmp_path / "missing.mp4", model=model)
    assert isinstance(table, pd.DataFrame)


def test_a_ready_frame_step_refuses_options_it_would_ignore(model, person_photo):
    from emotify_ml.scoring import FrameStep, ScoringOptions

    step = FrameStep(model, options=ScoringOptions(detect="always"))
    assert len(emotify_ml.analyze(person_photo, model=step)) == 1
    for extra in ({"detect": "never"}, {"options": ScoringOptions()}):
        with pytest.raises(ValueError, match="a ready FrameStep keeps its own"):
            emotify_ml.analyze(person_photo, model=step, **extra)
