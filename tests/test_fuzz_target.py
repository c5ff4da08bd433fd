"""The atheris fuzz target (tests/fuzz/fuzz_decoders.py): seeds by default, a bounded fuzzing session under -m fuzz."""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parent / "fuzz" / "fuzz_decoders.py"


def load_target():
    spec = importlib.util.spec_from_file_location("fuzz_decoders", TARGET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeds() -> list[bytes]:
    from emotify_ml.data.mpii import sample_mpii_path

    fer = b"emotion,pixels,Usage\n3," + b" ".join([b"9"] * 2304) + b",Training\n"
    mpii = sample_mpii_path().read_bytes()[:3000]
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    return [bytes([i]) + body for i in range(3)
            for body in (b"", fer, b"\xef\xbb\xbf" + fer, gzip.compress(fer), fer[:50] + b"\xff", mpii, png)]


def test_the_fuzz_target_survives_its_seeds():
    target = load_target()
    for data in seeds():
        target.TestOneInput(data)


@pytest.mark.fuzz
def test_a_bounded_fuzzing_session_finds_no_crash(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, data in enumerate(seeds()):
        (corpus / f"seed{i}").write_bytes(data)
    out = subprocess.run([sys.executable, str(TARGET), str(corpus), "-max_total_time=120", "-max_len=4096",
                          f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-4000:]
