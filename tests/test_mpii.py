"""MPII loader: the bundled sample, splits, and clear errors for a wrong header or malformed rows."""

from __future__ import annotations

import numpy as np
import pytest

from emotify_ml.data.mpii import HEADER, load_mpii, load_mpii_splits, sample_mpii_path, split_indices
from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.experiment import Splits
from emotify_ml.labels import MPII_CATEGORIES


def _write(tmp_path, rows, header=HEADER):
    path = tmp_path / "mpii.csv"
    path.write_bytes(("\r\n".join([",".join(header), *rows]) + "\r\n").encode())
    return path


def _row(i=1, category="sports", joint="10"):
    return ",".join([str(i), f"{i:09d}.jpg", joint, *(["20"] * 31), "3.0", "curling", category])


def test_sample_loads_drops_na_and_marks_missing():
    data = load_mpii(sample_mpii_path())
    assert len(data) == 300 and data.n_unlabelled == 4
    assert data.joints.shape == (300, 16, 2) and data.visible.shape == (300, 16)
    assert np.isnan(data.joints[~data.visible]).all() and np.isfinite(data.joints[data.visible]).all()
    assert (~data.visible).any()
    assert data.class_names == MPII_CATEGORIES and set(data.labels) == set(range(20))
    assert data.scale.shape == (300,) and (data.scale > 0).all()
    assert len(data.sha256) == 64


def test_activity_labels():
    data = load_mpii(sample_mpii_path(), labels="activity")
    assert list(data.class_names) == sorted(set(data.activities))
    assert (np.asarray(data.class_names)[data.labels] == data.activities).all()


def test_splits_are_stratified_fixed_and_disjoint():
    splits = load_mpii_splits(sample_mpii_path())
    assert isinstance(splits, Splits) and splits.X_train.shape[1] == 32
    n = splits.identity
    assert n["n_test"] == 60 and n["n_train"] + n["n_val"] + n["n_test"] == 300
    again = load_mpii_splits(sample_mpii_path())
    assert np.array_equal(splits.X_test, again.X_test, equal_nan=True)
    train, val, test = split_indices(np.arange(1000) % 20)
    assert len(set(train) | set(val) | set(test)) == 1000 and not set(train) & set(test)
    assert np.bincount(np.arange(1000)[test] % 20).min() == 10  # stratified


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_mpii(tmp_path / "nope.csv")


def test_wrong_header(tmp_path):
    path = _write(tmp_path, [_row()], header=("ID", "NAME", "r_ankle_X", *HEADER[3:]))
    with pytest.raises(DataError, match="column 3 is 'r_ankle_X'"):
        load_mpii(path)


@pytest.mark.parametrize("bad, match", [
    (_row(2, joint="ten"), "non-numeric"),
    (_row(2)[:-10], "fields"),
    (_row(2, category="juggling"), "unknown Category"),
])
def test_malformed_rows_raise_or_skip(tmp_path, bad, match):
    path = _write(tmp_path, [_row(1), bad, _row(3, "NA")])
    with pytest.raises(DataError, match=f"mpii.csv:3: .*{match}"):
        load_mpii(path)
    data = load_mpii(path, on_error="skip")
    assert len(data) == 1 and data.n_skipped == 1 and data.n_unlabelled == 1


@pytest.mark.slow
def test_full_mpii_counts(full_mpii_csv):
    splits = load_mpii_splits(full_mpii_csv)
    assert splits.identity["n_rows"] == 17331 and splits.identity["n_test"] == 3467


@pytest.mark.slow
def test_shipped_action_model_reaches_its_recorded_test_metrics(full_mpii_csv):
    """The committed action model scores, on the full MPII test split, what its provenance.json recorded."""
    import json

    from emotify_ml.models import KINDS, load_action_model
    from emotify_ml.evaluation import evaluate

    provenance = json.loads((KINDS["action"].shipped_dir / "provenance.json").read_text())
    splits = load_mpii_splits(full_mpii_csv)
    assert splits.identity["sha256"] == provenance["params"]["dataset.sha256"]
    result = evaluate(splits.y_test, load_action_model().predict_proba(splits.X_test), splits.class_names)
    for key in ("accuracy", "top3_accuracy", "macro_f1"):
        assert abs(result[key] - provenance["metrics"][f"test_{key}"]) <= 0.002, key  # float round-off only


def test_no_path_is_the_bundled_sample_never_a_guessed_location(monkeypatch, tmp_path):
    """``data.path: null`` trains on the sample whether or not a full set lies in ../shared (data roots come from config)."""
    monkeypatch.setenv("EMOTIFY_SHARED_DATA", str(tmp_path))  # even where a full set would be found
    assert str(load_mpii().path) == str(sample_mpii_path())


def test_library_code_names_no_workspace_data_folder():
    """Data roots come from config: no module of emotify_ml builds a path into ../shared."""
    from pathlib import Path

    import emotify_ml

    offenders = [f"{path.name}:{n}" for path in Path(emotify_ml.__file__).parent.rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if ('"shared"' in line or "shared_data_dir" in line) and not line.lstrip().startswith("#")]
    assert not offenders
