"""Labelled photo sets (emotify_ml.data.photos): both layouts, identity, and one clear error per mistake."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotify_ml.data.photos import load_photos
from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.labels import EMOTIONS


def _photo(path, value=120, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))


def _csv_set(root, rows, images="images"):
    for name, _ in rows:
        _photo(root / images / name if images else root / name)
    (root / "labels.csv").write_text("image,label\n" + "".join(f"{n},{l}\n" for n, l in rows))
    return root


def test_csv_layout_reads_paths_labels_and_identity(tmp_path):
    root = _csv_set(tmp_path / "set", [("a.jpg", "happy"), ("b.png", "Disgust"), ("sub/c.jpg", "neutral")])
    photos = load_photos(root)
    assert len(photos) == 3 and photos.layout == "csv" and photos.name == "set"
    assert [EMOTIONS[i] for i in photos.labels] == ["happy", "disgust", "neutral"]
    assert photos.relative_paths() == ["images/a.jpg", "images/b.png", "images/sub/c.jpg"]
    assert photos.read(1).shape == (30, 40, 3)
    ident = photos.identity()
    assert ident["n"] == 3 and ident["n_disgust"] == 1 and len(ident["hash"]) == 64
    (root / "labels.csv").write_text("image,label\na.jpg,happy\nb.png,sad\nsub/c.jpg,neutral\n")
    assert load_photos(root).content_hash() != ident["hash"]  # a changed label changes the identity


def test_csv_without_images_folder_is_relative_to_root(tmp_path):
    photos = load_photos(_csv_set(tmp_path, [("x.jpg", "fear")], images=None))
    assert photos.relative_paths() == ["x.jpg"]


def test_class_folders_layout(tmp_path):
    _photo(tmp_path / "happy" / "1.jpg")
    _photo(tmp_path / "Sad" / "2.jpg")
    (tmp_path / "sad_notes.txt").write_text("ignored: a file, not a folder")
    (tmp_path / "Sad" / "readme.txt").write_text("ignored: not a photo")
    photos = load_photos(tmp_path)
    assert photos.layout == "folders" and [EMOTIONS[i] for i in photos.labels] == ["happy", "sad"]


def test_unknown_label_lists_the_seven(tmp_path):
    root = _csv_set(tmp_path, [("a.jpg", "happy"), ("b.jpg", "contempt")])
    with pytest.raises(DataError, match=r"line 3: unknown label 'contempt'; expected one of angry, disgust, fear, "
                                        r"happy, sad, surprise, neutral"):
        load_photos(root)


def test_unknown_class_folder_lists_the_seven(tmp_path):
    _photo(tmp_path / "joy" / "1.jpg")
    with pytest.raises(DataError, match="unknown label 'joy'; expected one of angry, disgust"):
        load_photos(tmp_path)


def test_missing_photo_is_named(tmp_path):
    root = _csv_set(tmp_path, [("a.jpg", "happy")])
    (root / "labels.csv").write_text("image,label\na.jpg,happy\ngone.jpg,sad\n")
    with pytest.raises(DataNotFoundError, match=r"1 photo\(s\) listed in .* do not exist .*'gone.jpg'"):
        load_photos(root)


@pytest.mark.parametrize("make, match", [
    (lambda root: None, "neither labels.csv nor class folders"),
    (lambda root: (root / "happy").mkdir(), "no photos"),
    (lambda root: (root / "labels.csv").write_text("image,label\n"), "lists no photos"),
    (lambda root: (root / "labels.csv").write_text("file,emotion\na.jpg,happy\n"), "'image' and 'label' columns"),
])
def test_empty_or_malformed_sets(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(DataError, match=match):
        load_photos(tmp_path)


def test_missing_root_and_conflicting_duplicate(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_photos(tmp_path / "nowhere")
    root = _csv_set(tmp_path, [("a.jpg", "happy")])
    (root / "labels.csv").write_text("image,label\na.jpg,happy\na.jpg,sad\n")
    with pytest.raises(DataError, match="listed again with another label"):
        load_photos(root)


def test_unreadable_photo_is_named(tmp_path):
    root = _csv_set(tmp_path, [("a.jpg", "happy")])
    (root / "images" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read photo .*a.jpg"):
        load_photos(root).read(0)
