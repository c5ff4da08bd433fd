"""Property-based tests (hypothesis): loaders, image decoding, the model contract and option parsing
take anything and either work or raise a clean Emotify error, never a stray library exception.

Each property runs a few dozen examples by default (the whole file in seconds) and many more under
the ``fuzz`` marker: ``python -m pytest -m fuzz tests/test_properties.py``.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emotify_ml.exceptions import DataError, EmotifyError

BUDGETS = [pytest.param(25, id="fast"), pytest.param(1500, id="fuzz", marks=pytest.mark.fuzz)]
"""Examples per property: the default run, and ``-m fuzz``."""


def run(budget, strategy, check):
    """Run ``check`` on ``budget`` examples drawn from ``strategy`` (no deadline: shared CPUs are slow)."""
    @settings(max_examples=budget, deadline=None, derandomize=budget < 100, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(strategy)
    def prop(value):
        check(value)

    prop()


def written(data: bytes, suffix: str = ".csv") -> Path:
    folder = Path(tempfile.mkdtemp(prefix="emotify_prop_"))
    path = folder / f"f{suffix}"
    path.write_bytes(data)
    return path


def csv_bytes(header, rows, *, bom=False, gz=False, encoding="utf-8") -> bytes:
    import gzip

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    data = (("\ufeff" if bom else "") + buf.getvalue()).encode(encoding, errors="replace")
    return gzip.compress(data) if gz else data


# ---------------------------------------------------------------- csv loaders


def fer_rows():
    value = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["", "x", "1e3", "nan", " 7", "٣"]))
    pixels = st.one_of(st.lists(st.integers(-2, 260), min_size=0, max_size=70).map(lambda v: " ".join(map(str, v))),
                       st.just(" ".join(["9"] * 2304)), st.text(max_size=30))
    usage = st.sampled_from(["Training", "PublicTest", "PrivateTest", "", "Holdout", "training "])
    row = st.one_of(st.tuples(value, pixels, usage).map(list), st.lists(st.text(max_size=8), max_size=5))
    return st.lists(row, max_size=6)


@pytest.mark.parametrize("budget", BUDGETS)
def test_fer_csv_loads_or_raises_a_data_error(budget):
    from emotify_ml.data.fer2013 import load_fer2013_csv

    header = st.sampled_from([["emotion", "pixels", "Usage"], ["emotion", "pixels"], ["Usage", "pixels", "emotion"],
                              ["label", "pix"]])
    files = st.builds(csv_bytes, header, fer_rows(), bom=st.booleans(), gz=st.booleans(),
                      encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))

    def check(data):
        path = written(data)
        for on_error in ("raise", "skip"):
            try:
                out = load_fer2013_csv(path, on_error=on_error, resize=True)
            except DataError:
                continue
            assert out.images.dtype == np.uint8 and out.images.shape[1:] == (48, 48)
            assert len(out.images) == len(out.labels) == len(out.usage)

    run(budget, files, check)


@pytest.mark.parametrize("budget", BUDGETS)
def test_any_bytes_as_a_csv_are_loaded_or_refused_cleanly(budget):
    from emotify_ml.data.fer2013 import load_fer2013_csv
    from emotify_ml.data.mpii import load_mpii, sample_mpii_path

    sample = sample_mpii_path().read_bytes()[:4000]
    raw = st.one_of(st.binary(max_size=600),
                    st.builds(lambda cut, junk: sample[:cut] + junk, st.integers(0, len(sample)),
                              st.binary(max_size=40)),
                    st.builds(lambda b: __import__("gzip").compress(b), st.binary(max_size=200)))

    def check(data):
        path = written(data)
        for load in (load_fer2013_csv, load_mpii):
            try:
                load(path, on_error="skip")
            except DataError:
                pass

    run(budget, raw, check)


@pytest.mark.parametrize("budget", BUDGETS)
def test_mpii_rows_load_or_raise_a_data_error(budget):
    from emotify_ml.data.mpii import HEADER, load_mpii
    from emotify_ml.labels import MPII_CATEGORIES

    number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 2000).map(str),
                       st.sampled_from(["", "x", "-1", "1e400"]))
    good = st.tuples(st.integers(0, 10**6).map(str), st.text(max_size=10), st.lists(number, min_size=33, max_size=33),
                     st.text(max_size=10), st.sampled_from([*MPII_CATEGORIES[:3], "NA", "nope", ""]))
    row = st.one_of(good.map(lambda t: [t[0], t[1], *t[2], t[3], t[4]]), st.lists(st.text(max_size=6), max_size=40))
    files = st.builds(csv_bytes, st.just(list(HEADER)), st.lists(row, max_size=5), bom=st.booleans(), gz=st.booleans())

    def check(data):
        path = written(data)
        for on_error in ("raise", "skip"):
            try:
                out = load_mpii(path, on_error=on_error)
            except DataError:
                continue
            assert out.joints.shape[1:] == (16, 2) and len(out.labels) == len(out)
            assert np.isnan(out.joints[~out.visible]).all() and np.isfinite(out.joints[out.visible]).all()

    run(budget, files, check)


# ---------------------------------------------------------------- image decoding


def image_bytes():
    import cv2

    def encode(args):
        h, w, channels, ext, seed = args
        img = np.random.default_rng(seed).integers(0, 256, (h, w, channels) if channels > 1 else (h, w), np.uint8)
        ok, buf = cv2.imencode(ext, img)
        return buf.tobytes()

    good = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 4]),
                     st.sampled_from([".png", ".jpg", ".bmp"]), st.integers(0, 2**16)).map(encode)
    return st.one_of(st.binary(max_size=300), good,
                     st.builds(lambda b, cut: b[:cut], good, st.integers(0, 200)))


@pytest.mark.parametrize("budget", BUDGETS)
def test_image_decoding_gives_a_bgr_frame_or_an_input_error(budget):
    from emotify_ml.exceptions import InputError
    from emotify_ml.io.frames import decode_image

    def check(data):
        try:
            frame = decode_image(data)
        except InputError:
            return
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3

    run(budget, image_bytes(), check)


@pytest.mark.parametrize("budget", BUDGETS)
def test_fer_folder_loader_skips_or_names_an_undecodable_image(budget):
    from emotify_ml.data.fer2013 import load_fer2013_folder

    good = np.full((48, 48), 128, np.uint8)

    def check(data):
        import cv2

        root = Path(tempfile.mkdtemp(prefix="emotify_prop_"))
        (root / "train" / "happy").mkdir(parents=True)
        cv2.imwrite(str(root / "train" / "happy" / "good.png"), good)
        (root / "train" / "happy" / "x.png").write_bytes(data)
        try:
            load_fer2013_folder(root, cache=False, n_jobs=1)
        except DataError as exc:
            assert "x.png" in str(exc)
        out = load_fer2013_folder(root, cache=False, n_jobs=1, on_error="skip")
        assert 1 <= len(out) <= 2 and out.images.shape[1:] == (48, 48)

    run(budget, image_bytes(), check)


# ---------------------------------------------------------------- the model contract


@pytest.fixture(scope="module")
def emotion_model():
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.models import FittedModel
    from emotify_ml.pipeline import build_pipeline
    from tests.conftest import synthetic_faces

    faces, labels = synthetic_faces(14)
    pipeline = build_pipeline(features={"hog": HOGTransformer()}, classifier=LogisticRegression(max_iter=100))
    return FittedModel(pipeline.fit(faces, labels), kind="emotion")


def model_inputs():
    dtypes = st.sampled_from([np.uint8, np.int16, np.int64, np.float16, np.float32, np.float64, np.bool_,
                              np.complex64, np.uint16])
    shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=50).filter(
        lambda s: int(np.prod(s)) <= 60_000)
    arrays = st.builds(lambda a: a, hnp.arrays(dtypes, shapes, elements=None))
    crops = st.lists(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=60)),
                     min_size=0, max_size=4)
    odd = st.sampled_from([None, 3, "faces", [1, 2, 3], [[1, 2], [3]], {"a": 1}, np.array(["a", "b"]),
                           np.array([None, None], dtype=object)])
    return st.one_of(arrays, crops, odd)


@pytest.mark.parametrize("budget", BUDGETS)
def test_predict_proba_gives_probabilities_or_a_clean_error(budget, emotion_model):
    def check(X):
        try:
            proba = emotion_model.predict_proba(X)
        except EmotifyError:
            return
        assert proba.ndim == 2 and proba.shape[1] == 7
        assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1.0, atol=1e-5) if len(proba) else True

    run(budget, model_inputs(), check)


# ---------------------------------------------------------------- live and batch option parsing


FLAGS = {"--margin": st.floats(allow_nan=True, allow_infinity=True).map(repr), "--alpha": st.text(max_size=6),
         "--iou": st.floats(-2, 3).map(repr), "--score-threshold": st.sampled_from(["0.5", "-1", "2", "nan", "x"]),
         "--det-size": st.integers(-10, 5000).map(str), "--window": st.integers(-3, 50).map(str),
         "--max-missed": st.integers(-3, 50).map(str), "--max-frames": st.sampled_from(["0", "-1", "5", "x"]),
         "--smoothing": st.sampled_from(["ema", "window", "none", "kalman"]),
         "--detector": st.sampled_from(["yunet", "haar", "dlib"])}


@pytest.mark.parametrize("budget", BUDGETS)
def test_live_options_parse_or_fail_with_a_usage_error(budget, tmp_path_factory, capsys):
    """Whatever the flags, main() gives a documented exit code and one error line, never a traceback."""
    from emotify_ml.live.__main__ import main

    missing = str(tmp_path_factory.mktemp("live") / "missing.mp4")
    argv = st.lists(st.sampled_from(sorted(FLAGS)).flatmap(lambda f: FLAGS[f].map(lambda v: f"{f}={v}")), max_size=5)

    def check(args):
        capsys.readouterr()
        try:
            code = main(["--source", missing, "--no-display", "-q", *args])
        except SystemExit as exc:
            code = exc.code
        assert code in (2, 4), code  # bad options (2), else the missing source (4): checked before the model
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("error:") == 1, err

    run(budget, argv, check)


@pytest.mark.parametrize("budget", BUDGETS)
def test_batch_options_check_or_raise_a_value_error(budget):
    from emotify_ml.batch import BatchOptions

    values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10), st.floats(allow_nan=True), st.text(max_size=5))
    fields = st.fixed_dictionaries({}, optional={k: values for k in ("engine", "frame_stride", "frames_per_item",
                                                                     "batch_size", "margin", "detect", "align",
                                                                     "runtime")})

    def check(changes):
        try:
            options = BatchOptions(**changes).check()
        except (ValueError, TypeError) as exc:
            assert not isinstance(exc, TypeError) or "not supported between" not in str(exc), exc
            return
        assume(options is not None)

    run(budget, fields, check)
