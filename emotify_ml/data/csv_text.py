"""Read a csv data file as text the way users save them: UTF-8 with or without a BOM, plain or gzipped.

The FER-2013 and MPII loaders read their csv through :func:`csv_rows`, so both accept the
same files and give the same one-line errors, naming the file and the line: a file that
is not UTF-8 text (Latin-1, UTF-16, binary), a broken gzip stream, a NUL byte or an
over-long field.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = path.write_bytes(b"\\xef\\xbb\\xbfa,b\\r\\n1,2\\r\\n")
>>> [(line, row) for line, row in csv_rows(path)]
[(1, ['a', 'b']), (2, ['1', '2'])]
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path
from typing import Iterator

from emotify_ml.exceptions import DataError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def is_gzip(path) -> bool:
    """Whether the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def text_lines(path, digest=None) -> Iterator[str]:
    """The lines of ``path`` decoded as UTF-8 (a leading BOM dropped), from a gzip file too.

    Parameters
    ----------
    path : path
        A ``.csv`` or ``.csv.gz`` (gzip is recognised by its content, not its name).
    digest : hashlib object, optional
        Updated with the (decompressed) bytes, so a gzipped file hashes as its content.

    Raises
    ------
    DataError
        Naming the file and line: not UTF-8 text, UTF-16 text, or a broken gzip stream.
    """
    path = Path(path)
    packed = is_gzip(path)
    opener = gzip.open if packed else open
    with opener(path, "rb") as fh:
        lineno = 0
        try:
            for raw in fh:
                lineno += 1
                if digest is not None:
                    digest.update(raw)
                if lineno == 1:
                    if raw.startswith(UTF16_BOMS):
                        raise DataError(f"{path}: is UTF-16 text; save it as UTF-8 (with or without a BOM)")
                    raw = raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}: line {lineno} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                    f"column {exc.start + 1}); save the csv as UTF-8") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: broken gzip data after line {lineno} ({exc}); "
                            "decompress it again or use the plain .csv") from None


def csv_rows(path, digest=None) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each csv record of ``path`` (header included), read by :func:`text_lines`.

    Raises
    ------
    DataError
        As :func:`text_lines`, or a record the csv module cannot parse (a NUL byte, a field
        over the csv field size limit, an unterminated quote), naming the line.
    """
    reader = csv.reader(text_lines(path, digest))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: not a csv record ({exc})") from None
        yield reader.line_num, row
