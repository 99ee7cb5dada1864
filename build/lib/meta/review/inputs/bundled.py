"""The dataset that travels with the package: where it is, which folder a command reads, and a copy to edit.

A wheel carries ``data/`` as package data of ``meta.review.bundled`` (``pyproject.toml``), read
with :mod:`importlib.resources`; in a source checkout the same files are the repository's
``data/`` folder. :func:`data_folder` picks what a command without ``--data`` reads: ``./data``
when it exists (a curator's working copy), the bundled dataset otherwise; it says which.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

__all__ = ["bundled_data", "data_folder", "copy_bundled"]

#: the files of the bundled dataset (everything a run reads, and the data dictionary)
BUNDLED_FILES = ("studies.csv", "outcomes.csv", "analyses.csv", "review_claims.csv", "vocabulary.csv",
                 "published_pooled.csv", "README.md")


def bundled_data() -> Path:
    """The folder of the bundled dataset: the installed package data, or the checkout's ``data/``."""
    try:
        installed = resources.files("meta.review") / "bundled"
        if installed.is_dir() and (installed / "studies.csv").is_file():
            return Path(str(installed))
    except (ModuleNotFoundError, TypeError, NotADirectoryError):  # pragma: no cover - zipped installs
        pass
    return Path(__file__).resolve().parents[3] / "data"


def data_folder(given: str | None) -> tuple[Path, str | None]:
    """The data folder a command reads and, when it was not given, one line saying which was chosen."""
    if given is not None:
        return Path(given), None
    here = Path("data")
    if here.is_dir():
        return here, None
    found = bundled_data()
    return found, f"no ./data folder here: using the dataset bundled with the package ({found}); " \
                  "`meta get-data` copies it into ./data for editing"


def copy_bundled(to: str | Path) -> list[Path]:
    """Copy the bundled dataset into ``to`` (created; refused if it exists and is not empty)."""
    dst = Path(to)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"{dst} exists and is not an empty folder; choose another --to (nothing was copied)")
    src = bundled_data()
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for name in BUNDLED_FILES:
        if (src / name).is_file():
            out.append(Path(shutil.copyfile(src / name, dst / name)))
    return out
