"""Client bytes to frames: image type sniffing, size and pixel limits, decoding.

Every failure is an :class:`~emotify_ml.exceptions.InputError` subclass whose
``status`` is the HTTP status the server answers with, and whose message never names
a server-side path.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from emotify_ml.exceptions import InputError

IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Image formats the server decodes, with their media types."""

DEFAULT_MAX_PIXELS = 40_000_000
"""Most pixels a decoded image may have (a 40 MP photo; guards against decompression bombs)."""


class RequestInputError(InputError):
    """Bad client input; ``status`` is the HTTP status code and ``code`` a short machine-readable name."""

    status = 422
    code = "invalid_input"


class UnsupportedMediaError(RequestInputError):
    """Not a JPEG, PNG or WebP image (415)."""

    status = 415
    code = "unsupported_media_type"


class CorruptImageError(RequestInputError):
    """Looks like an image of a supported type but does not decode (422)."""

    status = 422
    code = "corrupt_image"


class TooLargeError(RequestInputError):
    """Over a size limit (413)."""

    status = 413
    code = "too_large"


def sniff_image_type(data: bytes) -> str | None:
    """``"JPEG"``, ``"PNG"`` or ``"WEBP"`` from the first bytes, else None.

    Examples
    --------
    >>> sniff_image_type(b"\\x89PNG\\r\\n\\x1a\\n...")
    'PNG'
    >>> sniff_image_type(b"GIF89a") is None
    True
    """
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(data: bytes, *, max_bytes: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A JPEG, PNG or WebP file's bytes as an (H, W, 3) BGR uint8 frame.

    The header is read first (Pillow, lazily) so that an image declaring more than
    ``max_pixels`` is refused before its pixels are decoded; the pixels are decoded by
    :func:`emotify_ml.io.frames.decode_image` (OpenCV, EXIF orientation applied), as every other Emotify frame.

    Raises
    ------
    TooLargeError
        More than ``max_bytes`` bytes or ``max_pixels`` pixels.
    UnsupportedMediaError
        Empty, or not JPEG/PNG/WebP.
    CorruptImageError
        A JPEG/PNG/WebP that does not decode, or smaller than 16x16 pixels.
    """
    from PIL import Image, UnidentifiedImageError

    from emotify_ml.io.frames import decode_image as decode_frame

    if max_bytes is not None and len(data) > max_bytes:
        raise TooLargeError(f"the image is {_mb(len(data))}; the limit is {_mb(max_bytes)}")
    if not data:
        raise UnsupportedMediaError("empty body: send a JPEG, PNG or WebP image (multipart field 'image' or the raw "
                                    "body)")
    kind = sniff_image_type(data)
    if kind is None:
        raise UnsupportedMediaError("not a JPEG, PNG or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own pixel limit follows
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Image.DecompressionBombError:
        raise TooLargeError(f"the image declares more pixels than the limit of {max_pixels:,}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise CorruptImageError(f"corrupt {kind} image: its header cannot be read") from None
    if width * height > max_pixels:
        raise TooLargeError(f"the image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    try:
        frame = decode_frame(data)
    except InputError:
        raise CorruptImageError(f"corrupt {kind} image: its pixels cannot be decoded") from None
    if min(frame.shape[:2]) < 16:
        raise CorruptImageError(f"the image is {frame.shape[1]}x{frame.shape[0]} pixels; at least 16x16 is needed")
    return frame


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
