"""Regression tests of issue 16's crashes and silent cases: each ends in one actionable line and its exit code.

The table of case classes, what each gets and which test checks it is docs/reliability.md.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotify_ml.data.fer2013 import load_fer2013, load_fer2013_csv
from emotify_ml.data.mpii import load_mpii, sample_mpii_path
from emotify_ml.exceptions import ConfigError, DataError, InputError

REPO = Path(__file__).resolve().parents[1]


def fer_csv(rows=2) -> bytes:
    pixels = " ".join(["7"] * 48 * 48)
    return ("emotion,pixels,Usage\n" + "".join(f"{i % 7},{pixels},Training\n" for i in range(rows))).encode()


# ---------------------------------------------------------------- csv encodings (FER and MPII alike)


@pytest.fixture(params=["fer", "mpii"])
def csv_bytes(request):
    """(kind, good csv bytes, loader)."""
    if request.param == "fer":
        return "fer", fer_csv(), load_fer2013_csv
    return "mpii", sample_mpii_path().read_bytes(), load_mpii


def test_a_csv_with_a_bom_or_gzipped_loads_as_the_plain_one(csv_bytes, tmp_path):
    kind, good, load = csv_bytes
    plain = tmp_path / "plain.csv"
    plain.write_bytes(good)
    expected = load(plain)
    for name, data in {"bom.csv": b"\xef\xbb\xbf" + good, "packed.csv.gz": gzip.compress(good),
                       "packed_but_named.csv": gzip.compress(good)}.items():
        (tmp_path / name).write_bytes(data)
        got = load(tmp_path / name)
        assert len(got) == len(expected), name
    if kind == "mpii":  # the data identity is the content's, compressed or not
        assert load(tmp_path / "packed.csv.gz").sha256 == expected.sha256
    else:
        assert load_fer2013(tmp_path / "packed.csv.gz").content_hash() == expected.content_hash()


def on_line(number, data: bytes, prefix: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = prefix + lines[number - 1]
    return b"\n".join(lines)


@pytest.mark.parametrize("damage, message", [
    (lambda b: on_line(3, b, "ç".encode("latin-1")), r"line 3 is not UTF-8 text \(byte 0xe7"),
    (lambda b: "\ufeff".encode("utf-16-le") + b.decode().encode("utf-16-le"), "is UTF-16 text"),
    (lambda b: gzip.compress(b)[:-30], "broken gzip data"),
    (lambda b: on_line(3, b, b"9" * 200_000), r"line 3: not a csv record \(field larger than field limit"),
])
def test_a_csv_that_is_not_utf8_text_names_the_file_and_line(csv_bytes, tmp_path, damage, message):
    _, good, load = csv_bytes
    path = tmp_path / "bad.csv"
    path.write_bytes(damage(good))
    with pytest.raises(DataError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_a_row_error_names_its_line_once(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(fer_csv(1) + b"3," + " ".join(["1"] * 9).encode() + b",Training\n")
    with pytest.raises(DataError) as info:
        load_fer2013_csv(path, resize=False)
    assert str(info.value) == f"{path}: line 3: image is 3x3, expected 48x48 (pass resize=True to resize)"


def test_a_runner_on_a_latin1_csv_prints_one_line(tmp_path, copied_store_uri, capsys):
    path = tmp_path / "fer2013.csv"
    path.write_bytes(fer_csv().replace(b"Training", "Trainíng".encode("latin-1"), 1))
    with pytest.raises(SystemExit) as info:
        run_job("experiment=svm_hog", f"data.root={path}", tracking=copied_store_uri)
    assert info.value.code == 2
    assert "line 2 is not UTF-8 text" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- model input


@pytest.mark.parametrize("faces", [np.full((2, 48, 48), np.nan), np.where(np.eye(48) > 0, np.inf, 3.0)[None]])
def test_nan_or_infinite_pixels_are_refused(faces):
    from emotify_ml.features.preprocessing import validate_faces

    with pytest.raises(InputError, match="NaN or infinite"):
        validate_faces(faces)


# ---------------------------------------------------------------- the runner, promote, ship_model, score_batch


def one_error_line(err: str) -> str:
    """The one line an error printed (library log lines aside); fails on a traceback or a second error line."""
    lines = [line for line in err.splitlines() if line.startswith(("error", "Traceback"))]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def run_job(*overrides, tracking):
    """The runner's job, in-process, through the entry points' shared error handling (SystemExit on error)."""
    from pipelines._common import exit_on_error
    from pipelines.run import compose, run

    return exit_on_error(lambda: run(compose([*overrides, f"tracking.uri={tracking}"])))()


@pytest.mark.parametrize("override, message", [
    ("+classifier.bogus=1", r"classifier.bogus is not a parameter of emotify_ml.pipeline.make_svm; remove it \(its "
                            r"parameters: C, kernel"),
    ("classifier.C=abc", r"classifier.C='abc' is invalid: The 'C' parameter of LinearSVC must be a float"),
])
def test_a_bad_classifier_parameter_is_blamed_by_its_config_key(override, message, copied_store_uri, capsys):
    with pytest.raises(SystemExit) as info:
        run_job("experiment=svm_hog", override, tracking=copied_store_uri)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert one_error_line(err) and "cross_val_predict" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize("uri, message", [
    ("sqlite:///{tmp}/a_file/m.db", "a_file' is a file, not a folder"),
    ("bogus://x", "unknown scheme 'bogus://'"),
])
def test_a_bad_tracking_uri_is_one_line(uri, message, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as info:
        run_job("experiment=svm_hog", tracking=uri.format(tmp=tmp_path))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert one_error_line(err).startswith("error: tracking URI") and message in err


def test_an_unknown_experiment_fails_with_the_list_and_logs_no_run(tmp_path):
    store = tmp_path / "m.db"
    out = subprocess.run([sys.executable, "-m", "pipelines.run", "experiment=no_such_experiment",
                          f"tracking.uri=sqlite:///{store}", f"hydra.run.dir={tmp_path}/h"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "error: experiment='no_such_experiment' is not an experiment config; choose one of: " in out.stderr
    assert "svm_hog" in out.stderr and "Traceback" not in out.stderr
    assert not store.exists()  # nothing trained, no run logged under that name


def test_promote_an_unknown_run_id_is_one_line(copied_store_uri, hydra_main, capsys):
    with pytest.raises(SystemExit) as info:
        hydra_main("pipelines.promote", f"tracking.uri={copied_store_uri}", "run_id=deadbeef")
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith("error: run_id 'deadbeef' is not a run of the tracking")


@pytest.mark.parametrize("override, message", [
    ("train.distill_alpha=2", "error: distill_alpha must be in [0, 1] and distill_temperature > 0; got 2, 4.0"),
    ("train.teacher=nowhere.keras", "error: teacher 'nowhere.keras' does not exist; give a trained backbone (.keras)"),
    ("train.class_balance=focal", "error: class_balance must be one of none, weights, logit_adjust; got 'focal'"),
    ("train.teacher=[]", "error: teacher is an empty list; give a trained backbone (.keras), or several"),
    ("train.teacher=[emotify_ml/backbones/weights/emotify_vgg.keras,nowhere.keras]",
     "error: teacher 'nowhere.keras' does not exist; give a trained backbone (.keras)"),
    ("train.teacher=5", "error: teacher must be a backbone path (.keras) or a list of them; got 5"),
    ("+model.residual=true", "error: residual units pair convolutions: convs_per_block must be even; got [1, 2, 2, 2]"),
    ("+model.squeeze_excite=4", "error: squeeze_excite gates residual units: set residual=True too"),
    ("train.init_from=data", "error: init_from 'data' is not a checkpoint folder (needs state.json and last.keras, "
                             "or state.json and checkpoint.npz)"),
    ("train.pack_to=README.md", "error: pack_to 'README.md' is a file; give a folder to keep the packed checkpoint in"),
])
def test_bad_training_options_are_one_line_and_open_no_run(override, message, tmp_path, hydra_main, capsys):
    """Checked before the data is read and a tracked run is opened: no FAILED run is left for a typo."""
    store = tmp_path / "m.db"
    with pytest.raises(SystemExit) as info:
        hydra_main("pipelines.train_backbone", "backbone=vgg_small", override, f"tracking.uri=sqlite:///{store}",
                   f"out_dir={tmp_path}/out")
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(message)
    assert not store.exists() and not (tmp_path / "out").exists()


def test_a_folder_another_training_holds_is_one_line_and_opens_no_run(tmp_path, hydra_main, capsys):
    """A second training on a held out_dir stops before its run opens, and leaves the first's folder as it was."""
    from emotify_ml.backbones.checkpoint import hold

    store, out = tmp_path / "m.db", tmp_path / "out"
    with hold(out), pytest.raises(SystemExit) as info:
        hydra_main("pipelines.train_backbone", "backbone=vgg_small", f"tracking.uri=sqlite:///{store}", f"out_dir={out}")
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(
        f"error: {str(out)!r} is being written by another training (pid {os.getpid()} on ")
    assert not store.exists() and [p.name for p in out.iterdir()] == [".lock"]


def test_export_into_a_folder_that_holds_other_things_is_one_line(tmp_path, hydra_main, capsys):
    """``out=`` is replaced by the compiled copy: a folder of other files (here: a note) is refused, not deleted."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as info:
        hydra_main("pipelines.export", "model=emotify_ml/models/shipped/emotion", f"out={tmp_path}",
                   f"tracking.uri=sqlite:///{tmp_path / 'm.db'}")
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: out={str(tmp_path)!r} is a folder that holds "
                                                              "other things")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("module, overrides, message", [
    ("pipelines.ship_model", ["dest={tmp}/shipped"], "error: models:/emotify-emotion@champion does not exist in "
                                                    "the tracking store"),
    ("pipelines.score_batch", ["output={tmp}/out"], "error: input is required"),
])
def test_ship_model_without_a_champion_and_score_batch_without_input_are_one_line(module, overrides, message, tmp_path,
                                                                                 copied_store_uri, hydra_main, capsys):
    with pytest.raises(SystemExit) as info:
        hydra_main(module, f"tracking.uri={copied_store_uri}", *(o.format(tmp=tmp_path) for o in overrides))
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(message)
    assert not (tmp_path / "shipped").exists()


@pytest.mark.parametrize("module, override, message", [
    ("pipelines.score_batch", "frame_stride=abc", "error: Error merging override frame_stride=abc: Value 'abc' of "
                                                  "type 'str' could not be converted to Integer"),
    ("pipelines.score_batch", "frame_stride=[", "error: frame_stride=[: not a valid override (no viable alternative"),
    ("pipelines.score_batch", "bogus=1", "error: Could not override 'bogus': Key 'bogus' not in 'BatchOptions'; "
                                         "To append to your config use +bogus=1"),
    ("pipelines.run", "classifier=nope", "error: In 'run': Could not find 'classifier/nope'; Available options in "
                                         "'classifier': "),
    ("pipelines.train_backbone", "backbone=nope", "error: In 'train_backbone': Could not find 'backbone/nope'; "
                                                  "Available options in 'backbone': resnet, vgg, vgg_small"),
])
def test_hydra_override_errors_are_one_line_exit_2(module, override, message, hydra_main, monkeypatch, capsys):
    """Errors Hydra raises while composing (type, grammar, unknown key, unknown option): one line, exit 2."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info:
        hydra_main(module, override)
    assert info.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(message)
    assert "HYDRA_FULL_ERROR" not in os.environ  # set only while Hydra runs


def test_check_tracking_uri_accepts_the_stores_mlflow_has():
    from emotify_ml.mlflow_runs import check_tracking_uri

    for uri in ("sqlite:///mlflow.db", "sqlite:///:memory:", "file:///tmp/mlruns", "mlruns", "http://127.0.0.1:5000",
                "postgresql+psycopg2://u@h/db", "databricks"):
        assert check_tracking_uri(uri) == uri
    with pytest.raises(ConfigError):
        check_tracking_uri("s4://bucket")


def test_missing_values_and_mlflow_errors_become_config_errors():
    from mlflow.exceptions import MlflowException
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from pipelines._common import expected_error

    try:
        OmegaConf.to_container(OmegaConf.create({"input": "???"}), throw_on_missing=True)
    except MissingMandatoryValue as exc:
        missing = expected_error(exc)
    assert isinstance(missing, ConfigError)
    assert str(missing) == "input is required: add input=<value> to the command line"
    mlflow_error = expected_error(MlflowException("Registered Model with name=x not found"))
    assert isinstance(mlflow_error, ConfigError)
    assert str(mlflow_error) == "MLflow: Registered Model with name=x not found"
    assert expected_error(RuntimeError("a bug")) is None  # bugs keep their traceback


def test_telemetry_is_switched_off_unless_the_user_opts_in(monkeypatch):
    from emotify_ml.mlflow_runs import TELEMETRY_OFF, disable_telemetry

    for key in [*TELEMETRY_OFF, "EMOTIFY_ALLOW_TELEMETRY"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EMOTIFY_ALLOW_TELEMETRY", "1")
    assert disable_telemetry() is False and "MLFLOW_DISABLE_TELEMETRY" not in os.environ
    monkeypatch.delenv("EMOTIFY_ALLOW_TELEMETRY")
    assert disable_telemetry() is True
    assert {k: os.environ[k] for k in TELEMETRY_OFF} == TELEMETRY_OFF
