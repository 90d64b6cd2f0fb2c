"""Writing a file of a run so that a concurrent reader (another session, the worker, a results page) never sees half
of it: the content goes to a temporary file beside it, which then replaces the file in one step (``os.replace``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` fills a temporary file, which then becomes ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))


def write_arrays(path: Path, **arrays: np.ndarray) -> None:
    """An ``.npz`` of ``arrays``, compressed."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a file handle, so numpy does not append another ".npz"
            np.savez_compressed(handle, **arrays)
    replace_atomically(path, write)
