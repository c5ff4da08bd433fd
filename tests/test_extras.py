"""The light install: ``pip install emotify`` (no TensorFlow) runs the README's main job and scores with the
compiled models; what needs TensorFlow says to install the ``train`` extra, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emotify_ml.exceptions import MissingDependencyError

REPO = Path(__file__).resolve().parents[1]
NO_TENSORFLOW = Path(__file__).resolve().parent / "no_tensorflow"


def run_without_tensorflow(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_TENSORFLOW), str(REPO)])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_blocker_hides_tensorflow():
    out = run_without_tensorflow("-c", "import keras")
    assert out.returncode == 1 and "No module named 'keras'" in out.stderr


def test_the_main_job_and_scoring_need_no_tensorflow(tmp_path, person_photo):
    import cv2

    job = run_without_tensorflow("-m", "pipelines.run", "experiment=svm_hog", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                                 f"hydra.run.dir={tmp_path}/hydra")
    assert job.returncode == 0, job.stderr[-2000:]
    cv2.imwrite(str(tmp_path / "person.png"), person_photo)
    code = ("import sys, emotify_ml; faces = emotify_ml.analyze(sys.argv[1], actions=True); "
            "print(faces[0].label, faces[0].actions is not None, 'tensorflow' in sys.modules)")
    scored = run_without_tensorflow("-c", code, str(tmp_path / "person.png"), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    label, has_actions, tf_loaded = scored.stdout.split()
    assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert (has_actions, tf_loaded) == ("True", "False")


def test_what_needs_tensorflow_says_to_install_the_train_extra(monkeypatch):
    from emotify_ml.extras import require_keras

    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"training a backbone needs TensorFlow and Keras.*emotify\[train\]"):
        require_keras("training a backbone")
    assert issubclass(MissingDependencyError, ImportError)
