"""atheris fuzz target for Emotify's decoders: FER-2013 csv, MPII csv, image bytes.

Run it (``pip install atheris``) for as long as you like::

    python tests/fuzz/fuzz_decoders.py -runs=100000 -max_len=4096

The first byte picks the decoder; the rest is the file. A decoder may only return a result or
raise an Emotify error (:class:`~emotify_ml.exceptions.EmotifyError`); anything else is a crash
that atheris reports with the input that caused it. ``tests/test_fuzz_target.py`` runs the target
on seed inputs in the default test run, and for a bounded time under ``-m fuzz``.
"""

from __future__ import annotations

import os
import sys
import tempfile

_DIR = tempfile.mkdtemp(prefix="emotify_fuzz_")


def _decoders():
    from emotify_ml.data.fer2013 import load_fer2013_csv
    from emotify_ml.data.mpii import load_mpii
    from emotify_ml.io.frames import decode_image

    def csv_file(load):
        def run(data: bytes):
            path = os.path.join(_DIR, "input.csv")
            with open(path, "wb") as fh:
                fh.write(data)
            load(path, on_error="skip")
        return run

    return [csv_file(load_fer2013_csv), csv_file(load_mpii), decode_image]


DECODERS = None


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris calls
    """Feed ``data[1:]`` to the decoder ``data[0]`` picks; only Emotify errors may come out."""
    global DECODERS
    from emotify_ml.exceptions import EmotifyError

    if DECODERS is None:
        DECODERS = _decoders()
    if not data:
        return
    try:
        DECODERS[data[0] % len(DECODERS)](data[1:])
    except EmotifyError:
        pass


def main(argv=None) -> None:
    import atheris

    with atheris.instrument_imports(include=["emotify_ml"]):
        import emotify_ml.data.fer2013  # noqa: F401
        import emotify_ml.data.mpii  # noqa: F401
        import emotify_ml.io.frames  # noqa: F401
        import emotify_ml.data.csv_text  # noqa: F401
    atheris.Setup(list(argv or sys.argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
