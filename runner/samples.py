"""The sample catalog and its images: inside the installed package, or the checkout's.

The wheel carries them as `runner/_samples` (pyproject's force-include, as for migrations);
a source checkout keeps them in the top-level `sample_manifests/`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def samples_dir() -> Path:
    packaged = resources.files("runner") / "_samples"
    # An installed wheel is unpacked on disk, so the resource is a real folder the fake
    # server can serve from and `submit` can read.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "sample_manifests"


SAMPLES_DIR = samples_dir()
SAMPLE_MANIFEST = SAMPLES_DIR / "catalog.csv"
SAMPLE_IMAGES = SAMPLES_DIR / "images"
