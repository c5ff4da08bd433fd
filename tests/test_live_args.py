"""The live CLI refuses bad options before it opens, loads or writes anything: one line, the documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotify_ml.live.__main__ import EXIT_MODEL, EXIT_OUTPUT, EXIT_USAGE, main

PROG = "python -m emotify_ml.live: error: "


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line or "Traceback" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flag", ["--margin", "--alpha", "--iou", "--score-threshold", "--track-threshold"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc"])
def test_non_finite_numbers_are_refused_at_parse_time(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--source", "nowhere.mp4", f"{flag}={value}"])
    assert info.value.code == EXIT_USAGE
    assert f"argument {flag}: '{value}' is not a" in one_line(capsys)


def test_an_absurd_margin_is_refused_before_anything_is_opened(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--source", "nowhere.mp4", "--margin", "1e6"])  # the source does not exist: not looked at yet
    assert info.value.code == EXIT_USAGE
    assert "margin must be in [0, 1]; got 1000000.0" in one_line(capsys)


@pytest.mark.parametrize("args, says", [
    (["--runtime", "bogus"], "runtime must be one of auto, keras, compiled or compiled:<variant>; got 'bogus'"),
    (["--detect-every", "0"], "detect_every must be an int >= 1"),
    (["--track-threshold", "1.5"], "track_threshold must be in [0, 1]; got 1.5"),
    (["--retry-size", "10"], "retry_size must be an int >= 32 (longest side in pixels), or 0/None for one look; got 10"),
    (["--crop-spread", "0.4"], "crop_spread must be a number in [0, 0.25] (a fraction of the face box; 0: the margin "
                               "alone); got 0.4"),
    (["--prior", "camera"], "argument --prior: invalid choice: 'camera'"),
])
def test_a_bad_runtime_or_detection_interval_is_one_usage_line(args, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--source", str(tmp_path), "--no-display", *args])
    assert info.value.code == EXIT_USAGE
    assert says in one_line(capsys)


@pytest.mark.parametrize("flag", ["--summary-json", "--jsonl", "--output"])
def test_an_output_in_a_missing_folder_is_refused_up_front(flag, tmp_path, capsys):
    name = "s.json" if flag == "--summary-json" else "x.jsonl" if flag == "--jsonl" else "x.mp4"
    target = tmp_path / "nope" / name
    assert main(["--source", "nowhere.mp4", "--no-display", flag, str(target)]) == EXIT_OUTPUT
    assert one_line(capsys) == f"{PROG}{flag} {str(target)!r}: the folder {str(target.parent)!r} does not exist"


def test_an_output_under_a_file_says_the_file_is_not_a_folder(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    target = tmp_path / "a_file" / "x.jsonl"
    assert main(["--source", "nowhere.mp4", "--no-display", "--jsonl", str(target)]) == EXIT_OUTPUT
    assert one_line(capsys) == f"{PROG}--jsonl {str(target)!r}: {str(tmp_path / 'a_file')!r} is a file, not a folder"


def test_an_unknown_tracking_store_is_exit_3(capsys):
    assert main(["--source", "nowhere.mp4", "--no-display", "--tracking-uri", "bogus://x"]) == EXIT_MODEL
    assert one_line(capsys).startswith(f"{PROG}--tracking-uri: tracking URI 'bogus://x': unknown scheme")


def test_an_action_model_given_as_the_emotion_model_is_exit_3(tmp_path, capsys):
    import cv2

    from emotify_ml.data import load_fer2013

    models = pytest.importorskip("emotify_ml.models")
    action_dir = Path(models.KINDS["action"].shipped_dir)
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.resize(load_fer2013(cache=False).images[0], (144, 144)))
    code = main(["--source", str(image), "--no-display", "-q", "--model", str(action_dir),
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == EXIT_MODEL
    assert "action" in one_line(capsys)


def test_a_1x1_image_in_a_folder_is_skipped_and_counted(tmp_path, capsys):
    import json

    import cv2
    import numpy as np

    from emotify_ml.data import load_fer2013

    folder = tmp_path / "photos"
    folder.mkdir()
    faces = load_fer2013(cache=False).images
    cv2.imwrite(str(folder / "a.png"), cv2.resize(faces[0], (144, 144)))
    cv2.imwrite(str(folder / "b.png"), np.zeros((1, 1), np.uint8))
    cv2.imwrite(str(folder / "c.png"), cv2.resize(faces[1], (144, 144)))
    code = main(["--source", str(folder), "--no-display", "--jsonl", str(tmp_path / "f.jsonl"),
                 "--summary-json", str(tmp_path / "s.json"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == 0, capsys.readouterr().err
    images = {json.loads(line).get("image") for line in (tmp_path / "f.jsonl").read_text().splitlines()}
    assert images == {"a.png", "c.png"}
    assert "b.png" in capsys.readouterr().err  # named as skipped
