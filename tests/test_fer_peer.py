"""The fer peer loader used by the benchmarks (skips when ../shared/models/fer_peer is absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fer_peer  # noqa: E402


def test_peer_input_matches_fer_preprocessing():
    faces = np.full((2, 48, 48), 255, np.uint8)
    x = fer_peer.peer_input(faces)
    assert x.shape == (2, 64, 64, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0)


def test_missing_peer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIFY_FER_PEER_DIR", str(tmp_path))
    assert fer_peer.peer_model_path() is None
    with pytest.raises(fer_peer.PeerNotFoundError, match="fer_peer"):
        fer_peer.load_peer()


@pytest.mark.skipif(fer_peer.peer_model_path() is None, reason="the fer peer model is not in ../shared")
def test_peer_scores_faces():
    from emotify_ml.data.fer2013 import load_fer2013

    data = load_fer2013().split("PrivateTest")
    peer = fer_peer.load_peer(num_threads=1)
    proba = peer.predict_proba(data.images[:40])
    assert proba.shape == (40, 7)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-3)
    assert np.mean(proba.argmax(1) == data.labels[:40]) > 0.3
