"""FER-2013 loaders: both layouts, caching, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pytest

import cv2
from emotify_ml.data import load_fer2013, load_fer2013_csv, load_fer2013_folder
from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.labels import EMOTIONS


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_folder(root, size=48):
    """train/{happy,sad} with Training_ files; test/{happy,sad} with Public/PrivateTest_ files."""
    rng = np.random.default_rng(0)
    files = {
        "train/happy/Training_1.jpg": 3, "train/happy/Training_2.jpg": 3, "train/sad/Training_3.jpg": 4,
        "test/happy/PublicTest_4.jpg": 3, "test/sad/PrivateTest_5.jpg": 4, "test/sad/PrivateTest_6.png": 4,
    }
    for rel in files:
        _write(root / rel, rng.integers(0, 255, (size, size), dtype=np.uint8))
    return files


def test_folder_layout_labels_and_usage(tmp_path):
    files = make_folder(tmp_path)
    data = load_fer2013_folder(tmp_path, cache=False)
    assert data.images.shape == (6, 48, 48) and data.images.dtype == np.uint8
    by_name = {p.split("/")[-1]: (int(lbl), u) for p, lbl, u in zip(data.paths, data.labels, data.usage)}
    assert by_name["Training_1.jpg"] == (EMOTIONS.index("happy"), "Training")
    assert by_name["PublicTest_4.jpg"] == (3, "PublicTest")
    assert by_name["PrivateTest_5.jpg"] == (4, "PrivateTest")
    assert sorted(data.labels.tolist()) == sorted(files.values())
    assert data.counts()["Training"]["happy"] == 2
    splits = data.to_splits()
    assert len(splits.y_train) == 3 and len(splits.y_val) == 1 and len(splits.y_test) == 2


def test_missing_root_and_bad_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_fer2013_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):  # callers can catch the standard exception
        load_fer2013(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither train/ nor test/"):
        load_fer2013_folder(tmp_path / "empty")


def test_unknown_class_folder(tmp_path):
    make_folder(tmp_path)
    _write(tmp_path / "train" / "contempt" / "Training_9.jpg", np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match="unknown class folder .*contempt"):
        load_fer2013_folder(tmp_path, cache=False)


def test_corrupt_image_raises_naming_file_or_is_skipped(tmp_path, caplog):
    make_folder(tmp_path)
    bad = tmp_path / "train" / "sad" / "Training_bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="Training_bad.jpg"):
        load_fer2013_folder(tmp_path, cache=False)
    data = load_fer2013_folder(tmp_path, cache=False, on_error="skip")
    assert len(data) == 6 and data.n_skipped == 1
    assert "skipped 1 unreadable" in caplog.text


def test_wrong_size_resized_or_refused(tmp_path):
    make_folder(tmp_path)
    _write(tmp_path / "train" / "sad" / "Training_big.jpg", np.zeros((96, 80), np.uint8))
    data = load_fer2013_folder(tmp_path, cache=False)
    assert data.images.shape[1:] == (48, 48) and len(data) == 7
    with pytest.raises(DataError, match="Training_big.jpg.*80x96, expected 48x48"):
        load_fer2013_folder(tmp_path, cache=False, resize=False)


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    make_folder(tmp_path / "fer")
    first = load_fer2013_folder(tmp_path / "fer", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "fer2013").glob("*.npz"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    second = load_fer2013_folder(tmp_path / "fer", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.images, second.images)
    assert first.content_hash() == second.content_hash()
    monkeypatch.undo()
    _write(tmp_path / "fer" / "train" / "happy" / "Training_new.jpg", np.zeros((48, 48), np.uint8))
    assert len(load_fer2013_folder(tmp_path / "fer", cache_dir=tmp_path / "cache")) == len(first) + 1


def _csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _pixels(value=7, n=48 * 48):
    return " ".join([str(value)] * n)


def test_csv_matches_folder_contract(tmp_path):
    path = _csv(tmp_path / "fer2013.csv", [f"3,{_pixels(1)},Training", f"4,{_pixels(2)},PublicTest",
                                           f"0,{_pixels(3)},PrivateTest"])
    data = load_fer2013(path)
    assert data.images.shape == (3, 48, 48) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [3, 4, 0]
    assert data.usage.tolist() == ["Training", "PublicTest", "PrivateTest"]
    assert data.images[1, 0, 0] == 2
    assert load_fer2013_csv(path).content_hash() == data.content_hash()


@pytest.mark.parametrize(
    "row, message",
    [
        (f"9,{_pixels()},Training", "emotion 9 is outside 0..6"),
        (f"x,{_pixels()},Training", "emotion 'x' is not an integer"),
        (f"3,{_pixels(n=101)},Training", "101 pixels, expected 2304"),
        (f"3,{_pixels()} abc,Training", "pixels are not all integers"),
        (f"3,{_pixels(300)},Training", "pixels must lie in 0..255"),
        (f"3,{_pixels()},Holdout", "Usage 'Holdout'"),
        ("3", "has 1 fields, expected 3"),
    ],
)
def test_csv_malformed_rows(tmp_path, row, message):
    path = _csv(tmp_path / "fer2013.csv", [f"3,{_pixels()},Training", row])
    with pytest.raises(DataError, match=f"line 3: (has )?{message}"):
        load_fer2013_csv(path)
    data = load_fer2013_csv(path, on_error="skip")
    assert len(data) == 1 and data.n_skipped == 1


def test_csv_header_and_resize(tmp_path):
    with pytest.raises(DataError, match="lacks column"):
        load_fer2013_csv(_csv(tmp_path / "a.csv", ["3,1 2"], header="label,pix"))
    with pytest.raises(DataNotFoundError):
        load_fer2013_csv(tmp_path / "missing.csv")
    path = _csv(tmp_path / "b.csv", [f"3,{_pixels(n=96 * 96)},Training"])
    assert load_fer2013_csv(path).images.shape == (1, 48, 48)
    with pytest.raises(DataError, match="96x96, expected 48x48"):
        load_fer2013_csv(path, resize=False)


def test_bundled_sample_is_the_default(sample_data):
    counts = sample_data.counts()
    assert set(counts) == {"Training", "PublicTest", "PrivateTest"}
    assert all(n > 0 for usage in counts.values() for n in usage.values())
    assert len(sample_data) >= 300


@pytest.mark.slow
def test_full_fer2013_counts(full_fer_root):
    data = load_fer2013(full_fer_root)
    assert len(data) == 35887
    assert {u: sum(c.values()) for u, c in data.counts().items()} == {
        "Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
