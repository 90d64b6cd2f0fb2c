"""A browser session's own folder on disk: its upload, and what a reader made of it.

Why: an upload belongs to the session that sent it. Kept in the server's memory (a cache shared by every session)
it stayed resident for as long as the server ran, and two sessions that uploaded the same bytes got one live object.
On disk, in a folder of the session's own, it costs no memory, a reader process can open it (:mod:`dashboard.reading`),
and it goes when the session ends: when a new session starts, the folders of sessions no longer connected are
removed (:func:`remove_ended`), and so is a folder whose :class:`SessionFolder` is garbage-collected or whose server
exits; folders left by a server process that is gone are removed when the next one makes a folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from . import processes, settings

UPLOADS = "uploads"


class SessionFolder:
    """``<sessions_dir>/<server pid>-<key>/``, removed with this object. ``key``: the browser session's id (so that
    :func:`remove_ended` can tell whose folder it is), or a random one. Making one first removes the folders that
    have no owner any more (``is_live``: see :func:`remove_ended`)."""

    def __init__(self, root: str | Path | None = None, key: str | None = None,
                 is_live: Callable[[str], bool] | None = None):
        self.root = Path(settings.sessions_dir() if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        remove_ended(self.root, is_live)
        self.key = key or secrets.token_hex(8)
        self.path = self.root / f"{os.getpid()}-{self.key}"
        self.path.mkdir(exist_ok=True)
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)

    def store_upload(self, files: Sequence[tuple[str, bytes | memoryview]]) -> list[Path]:
        """Write uploaded ``(name, content)`` pairs under their base names (no folder in a name can lead out) and
        return their paths. The same bytes uploaded again reuse the files already written (compared with them, which
        costs less than writing, and less than hashing the upload); the session's earlier uploads are removed (what
        was read from them is in memory)."""
        names = [Path(name).name for name, _ in files]
        label = hashlib.sha256(repr([(name, len(content)) for name, (_, content) in zip(names, files)]).encode())
        uploads = self.ready() / UPLOADS
        folder = uploads / label.hexdigest()[:16]
        for other in uploads.glob("*"):
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
        if not all(_holds(folder / name, content) for name, (_, content) in zip(names, files)):
            partial = folder.with_name(folder.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for name, (_, content) in zip(names, files):
                (partial / name).write_bytes(content)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        return [folder / name for name in names]

    def ready(self) -> Path:
        """The folder, made again if it was removed while its session was away (:func:`remove_ended`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def remove(self) -> None:
        """Remove the folder now (it is also removed when this object goes)."""
        self._remove()


def _holds(path: Path, content: bytes | memoryview, chunk: int = 1 << 20) -> bool:
    """Whether the file at ``path`` holds exactly ``content`` (read a chunk at a time: never a second copy in
    memory)."""
    content = memoryview(content).cast("B")
    if not path.is_file() or path.stat().st_size != len(content):
        return False
    with path.open("rb") as handle:
        return all(handle.read(chunk) == bytes(content[start:start + chunk]) for start in range(0, len(content), chunk))


def remove_ended(root: str | Path, is_live: Callable[[str], bool] | None = None) -> None:
    """Remove the folders of server processes that are gone (a killed server could not remove its own) and, given
    ``is_live`` (whether a session key belongs to a session still connected), those of this server's sessions that
    have ended: their objects may wait for the garbage collector long after the session went."""
    for folder in Path(root).iterdir():
        owner, _, key = folder.name.partition("-")
        if not (folder.is_dir() and owner.isdigit()):
            continue
        if not processes.is_running(int(owner)) or (int(owner) == os.getpid() and is_live and not is_live(key)):
            shutil.rmtree(folder, ignore_errors=True)
