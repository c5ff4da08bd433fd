"""Rebuild the bundled FER-2013 sample from the full folder set.

    python data/make_sample.py ../shared/data/fer2013 data/fer2013_sample

Picks, per class and seeded, 60 Training, 12 PublicTest and 12 PrivateTest
images (all classes have that many), copying the files unchanged.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

PER_CLASS = {"Training": 60, "PublicTest": 12, "PrivateTest": 12}
FOLDER = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def main(src: str, dst: str, seed: int = 2013) -> None:
    rng = np.random.default_rng(seed)
    src, dst = Path(src), Path(dst)
    for usage, n in PER_CLASS.items():
        for class_dir in sorted((src / FOLDER[usage]).iterdir()):
            files = sorted(p for p in class_dir.iterdir() if p.name.startswith(usage + "_"))
            out = dst / FOLDER[usage] / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for i in sorted(rng.choice(len(files), size=min(n, len(files)), replace=False)):
                shutil.copyfile(files[i], out / files[i].name)


if __name__ == "__main__":
    main(*sys.argv[1:3])
