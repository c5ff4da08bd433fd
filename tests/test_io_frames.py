"""The one video reader of every app (``emotify_ml.io.frames``): VideoFile's rate, range, limit and close."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from emotify_ml.exceptions import InputError
from emotify_ml.io.frames import VideoFile, VideoSource, read_video


@pytest.fixture
def clip(tmp_path):
    """20 frames at 10 fps (2 s), frame i filled with grey level 10 * i."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    return path


def test_video_file_gives_rate_length_stride_and_a_seconds_limit(clip, monkeypatch):
    monkeypatch.delenv("OPENCV_FFMPEG_LOGLEVEL", raising=False)
    with VideoFile(clip, stride=3, max_seconds=1.05) as video:
        assert (video.nominal_fps, video.fps, video.n_frames, video.duration) == (10.0, 10.0, 20, 2.0)
        frames = list(video.frames())
    assert [f.index for f in frames] == [0, 3, 6, 9]  # index / fps < 1.05 s
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert [f.index for f in read_video(clip, stride=3, end=11)] == [0, 3, 6, 9]  # the same reader underneath
    assert "OPENCV_FFMPEG_LOGLEVEL" not in os.environ  # nothing set in the process environment


def test_video_file_refuses_what_is_not_a_video_without_naming_it(tmp_path):
    path = tmp_path / "secret_name.avi"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError) as info:
        VideoFile(path)
    assert "secret_name" not in str(info.value)


def test_video_file_closes_from_another_thread_while_reading(clip):
    video = VideoFile(clip)
    frames = video.frames()
    assert next(frames).index == 0
    closer = threading.Thread(target=video.close)
    closer.start()
    closer.join(5)
    assert not closer.is_alive() and list(frames) == []  # nothing read after the close
    video.close()  # twice is fine


def test_video_source_reads_through_video_file(clip):
    with VideoSource(clip, stride=5) as source:
        assert source.fps == 10.0 and source.n_frames == 20
        assert [(f.index, f.timestamp) for f in source] == [(0, 0.0), (5, 0.5), (10, 1.0), (15, 1.5)]
