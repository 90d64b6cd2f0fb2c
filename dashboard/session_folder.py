"""A browser session's own folder on disk: its upload, and what a reader made of it.

Why: an upload belongs to the session that sent it. Kept in the server's memory (a cache shared by every session)
it stayed resident for as long as the server ran, and two sessions that uploaded the same bytes got one live object.
On disk, in a folder of the session's own, it costs no memory, a reader process can open it (:mod:`dashboard.reading`),
and it goes when the session ends: the folder is removed when its :class:`SessionFolder` is garbage-collected (the
session's state is dropped), or when the server exits; folders left by a server process that is gone are removed
when the next one makes its first folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import weakref
from collections.abc import Sequence
from pathlib import Path

from . import processes, settings

UPLOADS = "uploads"


class SessionFolder:
    """``<sessions_dir>/<server pid>-<random>/``, removed with this object."""

    def __init__(self, root: str | Path | None = None):
        root = Path(settings.sessions_dir() if root is None else root)
        root.mkdir(parents=True, exist_ok=True)
        _remove_orphans(root)
        self.path = root / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.path.mkdir()
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)

    def store_upload(self, files: Sequence[tuple[str, bytes | memoryview]]) -> list[Path]:
        """Write uploaded ``(name, content)`` pairs under their base names (no folder in a name can lead out) and
        return their paths. The same bytes uploaded again reuse the files already written; the session's earlier
        uploads are removed (what was read from them is in memory)."""
        digest = hashlib.sha256()
        for name, content in files:
            digest.update(Path(name).name.encode() + b"\0")
            digest.update(content)
        folder = self.path / UPLOADS / digest.hexdigest()[:16]
        for other in (self.path / UPLOADS).glob("*"):
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
        if not folder.is_dir():
            partial = folder.with_name(folder.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for name, content in files:
                (partial / Path(name).name).write_bytes(content)
            partial.rename(folder)
        return [folder / Path(name).name for name, _ in files]

    def remove(self) -> None:
        """Remove the folder now (it is also removed when this object goes)."""
        self._remove()


def _remove_orphans(root: Path) -> None:
    """Folders of server processes that are gone (a server that was killed could not remove its own)."""
    for folder in root.iterdir():
        owner = folder.name.split("-", 1)[0]
        if folder.is_dir() and owner.isdigit() and not processes.is_running(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
