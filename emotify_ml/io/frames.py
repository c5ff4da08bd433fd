"""Frame readers shared by every app: image decoding, videos with stride and range, and threaded live sources.

* :func:`decode_image`, :func:`read_image`, :func:`load_image`: one picture (bytes, a path, or an array)
  as a BGR frame;
* :func:`read_video`: the frames of a video file, every ``stride``-th one in ``[start, end)``
  (batch scoring and :func:`emotify_ml.analyze_video`); :class:`VideoFile`: the same with the
  file's frame rate and length, a limit in seconds and a close from another thread (the server);
* :func:`open_source`: a camera, a video file or stream, an image file or a folder of images, read
  in its own thread (live scoring).

Every source reads in its own thread, so a slow frame in the scoring loop never
blocks the camera (and a stalled camera never blocks the window):

* a camera or network stream keeps only the newest frame (old frames are dropped, the
  overlay stays current);
* a video file or an image folder is read ahead into a small queue and every frame is
  delivered, in order, so results are reproducible.

Errors (no camera, camera unplugged, unreadable file) are raised as
:class:`~emotify_ml.exceptions.SourceError` from :meth:`FrameSource.read` in the
caller's thread.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotify_ml.exceptions import InputError, SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""Files a folder source reads; anything else in the folder is ignored."""

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
"""Files batch scoring reads as videos (frame by frame, every ``stride``-th frame)."""

STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes
    ----------
    index : int
        0-based position in the source (frames dropped by a camera leave gaps).
    timestamp : float
        Seconds: media time for a video file, time since opening for a camera, 0 for images.
    image : (H, W, 3) uint8 BGR
    name : str or None
        The image file name for image sources.
    """

    index: int
    timestamp: float
    image: np.ndarray
    name: str | None = None


_END = object()


class FrameSource:
    """A source read by a background thread. Use :func:`open_source` to make one.

    Attributes
    ----------
    kind : {"camera", "stream", "video", "images"}
    description : str
        Human-readable name for messages.
    fps : float or None
        Nominal frame rate (video files and cameras that report one).
    live : bool
        True for cameras and streams (newest frame wins), False for files (every frame).
    independent : bool
        True when consecutive frames are unrelated pictures (an image folder): no tracking.
    """

    kind = "source"
    live = False
    independent = False

    def __init__(self, description: str, fps: float | None = None, buffer: int = 8):
        self.description = description
        self.fps = fps
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.live else buffer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._release_lock = threading.Lock()

    # --- to implement -------------------------------------------------------------------
    def _frames(self):
        """Yield :class:`Frame` objects; raise SourceError on failure. Runs in the reader thread."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the device or file (called once, from the reader thread when it ends)."""

    # --- threading ----------------------------------------------------------------------
    def start(self) -> "FrameSource":
        """Start the reader thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"emotify-capture-{self.kind}", daemon=True)
            self._thread.start()
        return self

    def _put(self, item) -> bool:
        """Hand an item to the consumer; False when the source is being closed."""
        if self.live and item is not _END and not isinstance(item, BaseException):
            try:  # newest frame wins: drop the one the consumer has not taken yet
                self._queue.get_nowait()
            except queue.Empty:
                pass
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.live:
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass
        return False

    def _run(self) -> None:
        try:
            for frame in self._frames():
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer thread, raised there
            self._put(exc if isinstance(exc, SourceError) else
                      SourceError(f"{self.description}: {type(exc).__name__}: {exc}"))
        finally:
            self._release_once()

    def _release_once(self) -> None:
        with self._release_lock:
            if not self._released:
                self._released = True
                self._release()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None at the end of the source.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for a frame; None waits as long as the reader thread lives.

        Raises
        ------
        SourceError
            The source failed (camera unplugged, file unreadable) or gave no frame in ``timeout``.
        """
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive() and self._queue.empty():
                    return None
                if deadline is not None and time.monotonic() > deadline:
                    raise SourceError(f"{self.description}: no frame for {timeout:g} s") from None
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        """Stop the reader thread and release the device or file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._thread is None or not self._thread.is_alive():
            self._release_once()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class _CaptureSource(FrameSource):
    """A source read through ``cv2.VideoCapture`` (camera, stream or video file)."""

    def __init__(self, cap, description: str):
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        super().__init__(description, fps=fps if fps and 1.0 <= fps <= 1000.0 else None)
        self._cap = cap

    def _release(self) -> None:
        self._cap.release()


class _LiveCaptureSource(_CaptureSource):
    """A camera or stream: newest frame wins, timestamped on capture, a stall is an error."""

    kind = "camera"
    live = True

    def __init__(self, cap, description: str, stall_timeout: float = 2.0):
        super().__init__(cap, description)
        self.stall_timeout = stall_timeout

    def _frames(self):
        start = time.monotonic()
        last_ok = start
        index = 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            now = time.monotonic()
            if not ok or image is None:
                if index == 0 and now - start > self.stall_timeout:
                    raise SourceError(f"{self.description} opened but gives no frames")
                if index > 0 and now - last_ok > self.stall_timeout:
                    raise SourceError(f"{self.description} stopped giving frames (unplugged or taken by another program)")
                time.sleep(0.01)
                continue
            last_ok = now
            yield Frame(index, now - start, to_bgr(image))
            index += 1


class CameraSource(_LiveCaptureSource):
    """A local camera (``cv2.VideoCapture(index)``); frames are timestamped on capture.

    Parameters
    ----------
    index : int
        Camera index (0 is the default camera).
    width, height : int, optional
        Requested resolution (the camera may pick the nearest it supports).
    stall_timeout : float
        Seconds without a frame after which the camera counts as unplugged.
    """

    kind = "camera"

    def __init__(self, index: int = 0, *, width: int | None = 640, height: int | None = 480,
                 stall_timeout: float = 2.0):
        cap = cv2.VideoCapture(int(index))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"no camera at index {index}: it does not exist, is in use, or access is denied "
                              "(use --source with a video file, an image or a folder to run without a camera)")
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        super().__init__(cap, f"camera {index}", stall_timeout)


class StreamSource(_LiveCaptureSource):
    """A network stream (``rtsp://``, ``http://``...) read like a camera: newest frame wins."""

    kind = "stream"

    def __init__(self, url: str, stall_timeout: float = 5.0):
        cap = cv2.VideoCapture(url)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open stream {url!r}")
        super().__init__(cap, f"stream {url}", stall_timeout)


class VideoSource(FrameSource):
    """A video file; every ``stride``-th frame of ``[start, end)`` is delivered in order, timestamped with its media time.

    The frames come from :class:`VideoFile` (:func:`read_video`), the one video reader of every app.
    """

    kind = "video"

    def __init__(self, path, *, stride: int = 1, start: int = 0, end: int | None = None):
        path = Path(path)
        try:
            self._video = VideoFile(path, stride=stride, start=start, end=end)
        except InputError as exc:
            raise SourceError(f"cannot read {str(path)!r}: {exc}") from None
        self.n_frames = self._video.n_frames
        super().__init__(f"video {path.name}", fps=self._video.nominal_fps)
        self._whole = stride == 1 and end is None  # only then is a short read a damaged file

    def _frames(self):
        last = None
        for frame in self._video.frames():
            if self._stop.is_set():
                return
            last = frame.index
            yield frame
        if self._whole and self.n_frames and last is not None and last < self.n_frames - 1:
            log.warning("%s ended after %d of %d frames (truncated or damaged file)", self.description, last + 1,
                        self.n_frames)

    def _release(self) -> None:
        self._video.close()


class ImageSource(FrameSource):
    """One image file or every image in a folder (sorted by name); each image is scored on its own.

    Unreadable files in a folder are skipped with a warning; a single unreadable file,
    or a folder without any readable image, is an error.
    """

    kind = "images"
    independent = True

    def __init__(self, path):
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise SourceError(f"folder {str(path)!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
            description = f"folder {path.name or path} ({len(files)} images)"
        else:
            files = [path]
            description = f"image {path.name}"
        super().__init__(description)
        self.files = files
        self._first = _read_image(files[0]) if len(files) == 1 else None
        if len(files) == 1 and self._first is None:
            raise SourceError(f"cannot read {str(path)!r}: not an image OpenCV can decode")

    def _frames(self):
        n_read = 0
        for index, file in enumerate(self.files):
            if self._stop.is_set():
                return
            image = self._first if index == 0 and self._first is not None else _read_image(file)
            if image is None:
                log.warning("skipping %s: not an image OpenCV can decode", file)
                continue
            n_read += 1
            yield Frame(index, 0.0, image, file.name)
        if n_read == 0:
            raise SourceError(f"{self.description}: none of the images can be decoded")


def _read_image(path: Path) -> np.ndarray | None:
    try:
        return read_image(path)
    except InputError:
        return None


def decode_image(data) -> np.ndarray:
    """Decode image bytes (any format OpenCV reads) to an (H, W, 3) BGR uint8 frame.

    Raises
    ------
    InputError
        Empty, or not an image.
    """
    buffer = np.frombuffer(data, np.uint8) if len(data) else np.zeros(0, np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise InputError("not an image OpenCV can decode" if buffer.size else "the file is empty")
    return image


def read_image(path) -> np.ndarray:
    """The image file ``path`` as an (H, W, 3) BGR uint8 frame (non-ASCII paths work on every OS).

    Raises
    ------
    InputError
        The file cannot be read, is empty, or is not an image.
    """
    try:
        data = np.fromfile(str(path), np.uint8)  # imread cannot open non-ASCII paths on Windows
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return decode_image(data)


def load_image(image) -> np.ndarray:
    """A picture given as a path, encoded bytes, or an (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) uint8 array, as BGR.

    Raises
    ------
    InputError
        Not a readable image, or an array of another shape or dtype.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InputError(f"image must be an (H, W) grey or (H, W, 3) BGR uint8 array; "
                             f"got {image.dtype} array of shape {image.shape}")
        return to_bgr(image)
    if isinstance(image, (str, Path)) or hasattr(image, "__fspath__"):
        return read_image(image)
    raise InputError(f"image must be a path, encoded bytes or a uint8 array; got {type(image).__name__}")


def video_frame_count(path) -> int:
    """Frames a video says it has (0 when it cannot be opened or does not say)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
    finally:
        cap.release()


def read_video(path, *, stride: int = 1, start: int = 0, end: int | None = None):
    """Yield the frames ``start, ...`` of a video that are multiples of ``stride``, up to ``end`` (excluded).

    Frames between are skipped without decoding (``grab``). Each :class:`Frame` has its index
    in the video and its media time in seconds (NaN when the video gives no frame rate).

    Parameters
    ----------
    path : str or path
    stride : int
        Keep frames 0, stride, 2*stride... (absolute indices, so ranges of one video agree).
    start, end : int
        The range ``[start, end)``; ``end`` None: to the end of the video.

    Raises
    ------
    InputError
        OpenCV cannot open the file, or (``start=0``) it has no decodable frame.
    """
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an int >= 1; got {stride!r}")
    if not isinstance(start, (int, np.integer)) or start < 0 or (end is not None and end < start):
        raise ValueError(f"start must be an int >= 0 and end None or >= start; got start={start!r}, end={end!r}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError("not a video OpenCV can open")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        index, n = start, 0
        while end is None or index < end:
            if index % stride:
                if not cap.grab():
                    break
            else:
                ok, image = cap.read()
                if not ok or image is None:
                    break
                n += 1
                yield Frame(index, index / fps if fps > 0 else float("nan"), to_bgr(image))
            index += 1
        if start == 0 and n == 0:
            raise InputError("the video has no decodable frame")
    finally:
        cap.release()


class VideoFile:
    """A video file opened for reading: its frame rate and length, and its frames (:func:`read_video`'s).

    Opening decodes the first frame in range, so a file that is not a decodable video fails at
    once. :meth:`close` may be called from another thread while a frame is being read: it waits
    for that frame, then releases the file.

    Parameters
    ----------
    path : str or path
    stride, start, end : int
        As :func:`read_video`.
    max_seconds : float, optional
        Stop before the frame at this media time (a limit on the work one file may cause).
    default_fps : float
        Frame rate assumed for timestamps and ``max_seconds`` when the file gives none.

    Attributes
    ----------
    nominal_fps : float or None
        The file's own frame rate (None when it gives none, or one outside [1, 1000]).
    fps : float
        ``nominal_fps``, else ``default_fps``; frame timestamps are ``index / fps``.
    n_frames : int or None
        Frames the file says it has.

    Raises
    ------
    InputError
        OpenCV cannot open the file, or it has no decodable frame in range (the message never names the path).
    """

    def __init__(self, path, *, stride: int = 1, start: int = 0, end: int | None = None,
                 max_seconds: float | None = None, default_fps: float = 30.0):
        cap = cv2.VideoCapture(str(path))
        opened = cap.isOpened()
        fps = cap.get(cv2.CAP_PROP_FPS) if opened else 0.0
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
        cap.release()
        if not opened:
            raise InputError("not a video OpenCV can open")
        self.nominal_fps = fps if fps and 1.0 <= fps <= 1000.0 else None
        self.fps = self.nominal_fps or float(default_fps)
        self.n_frames = n_frames if n_frames > 0 else None
        if max_seconds is not None:
            limit = max(start, math.ceil(max_seconds * self.fps))
            end = limit if end is None else min(end, limit)
        self._lock = threading.Lock()
        self._reader = read_video(path, stride=stride, start=start, end=end)
        self._first = next(self._reader, None)  # read_video's InputError (no decodable frame) passes through
        if self._first is None:
            self._reader.close()
            raise InputError(f"the video has no frame in [{start}, {end})")

    @property
    def duration(self) -> float | None:
        """Seconds, when the file says how many frames it has."""
        return None if not self.n_frames else self.n_frames / self.fps

    def frames(self):
        """Yield the :class:`Frame` objects in range, timestamped ``index / fps`` (once: the file is read as it goes)."""
        frame, self._first = self._first, None
        while frame is not None:
            yield Frame(frame.index, frame.index / self.fps, frame.image)
            with self._lock:
                frame = None if self._reader is None else next(self._reader, None)

    def close(self) -> None:
        """Release the file (safe to call twice, and from another thread)."""
        with self._lock:
            reader, self._reader, self._first = self._reader, None, None
        if reader is not None:
            reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A grey (H, W) or (H, W, 1), BGR, or BGRA uint8 image as (H, W, 3) BGR."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def open_source(spec, *, width: int | None = 640, height: int | None = 480) -> FrameSource:
    """Open what ``--source`` names.

    Parameters
    ----------
    spec : int or str or path
        A camera index (``0``), a stream URL, a video file, an image file or a folder of images.
    width, height : int, optional
        Resolution asked of a camera.

    Returns
    -------
    FrameSource
        Not started yet; :meth:`FrameSource.read` starts it.

    Raises
    ------
    SourceError
        Nothing can be read from ``spec``.
    """
    text = str(spec).strip()
    if isinstance(spec, (int, np.integer)) or text.isdigit():
        return CameraSource(int(text), width=width, height=height)
    if text.lower().startswith(STREAM_PREFIXES):
        return StreamSource(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"source {text!r} does not exist (expected a camera index, a video file, "
                          "an image file or a folder of images)")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    if path.stat().st_size == 0:
        raise SourceError(f"cannot read {text!r}: the file is empty")
    return VideoSource(path)
