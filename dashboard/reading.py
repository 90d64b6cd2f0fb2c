"""Reading a user's files as a service: each read in a process of its own, within a memory ceiling and a time limit.

Why: the web server is one process shared by every session. A file that needs more memory than the machine has, a
parser that runs for minutes, or a crash in a library reading a damaged file must end one reader, never the
server and everybody's session. The checks of :mod:`scvi_core.io`'s limits refuse most hostile files before work; this
service is the backstop for the rest:

- every read is a process forked from one that has the readers imported (:mod:`dashboard.reader`), so it starts at
  once and gives its memory back when it ends;
- it may use ``memory_bytes`` above its imports (:func:`dashboard.settings.reader_memory_bytes`: a share of the
  training processes' memory guard) and ``timeout_s`` seconds; past either it is killed and the user is told, in
  words, what it needed and what to do. At most :data:`~dashboard.settings.READERS_AT_ONCE` files are read at a time;
  other sessions' reads wait their turn;
- the server only receives the result: the reader writes the AnnData into the session's folder, its matrices as
  ``.npy`` files that the server maps without copying them (:mod:`dashboard.handover`);
- while it reads, ``on_progress`` gets a :class:`ReadProgress` twice a second: how long, how many bytes read, how
  much memory.

A saved model a user sends (:meth:`ReadingService.open_model`) is opened the same way, as a run written into the
session's folder that the server then moves into the runs directory (:mod:`dashboard.model_opening`).

Pages get the one service of the process with :func:`reading_service`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad

from scvi_core.io import DataLoadError

from . import handover, processes, settings
from .estimates import format_bytes
from .runs import RunStore

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.05
PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class ReadProgress:
    """Where a read stands, for the page to show."""

    name: str
    seconds: float
    file_bytes: int
    bytes_read: int | None = None
    memory_bytes: int = 0
    waiting: bool = False
    """Still waiting for another session's file to be read first."""

    def text(self) -> str:
        if self.waiting:
            return f"Waiting for other sessions' files to be read first ({self.seconds:.0f} s)…"
        read = "" if self.bytes_read is None else f", {format_bytes(self.bytes_read)} read"
        return (f"Reading '{self.name}' ({format_bytes(self.file_bytes)}): {self.seconds:.0f} s{read}, "
                f"{format_bytes(self.memory_bytes)} of memory so far…")


class ReadingService:
    """Reads files in bounded processes, one fork of a prepared reader per file."""

    def __init__(self, memory_bytes: int | None = None, timeout_s: float | None = None,
                 at_once: int = settings.READERS_AT_ONCE):
        self.memory_bytes = settings.reader_memory_bytes() if memory_bytes is None else memory_bytes
        self.timeout_s = settings.read_timeout_seconds() if timeout_s is None else timeout_s
        self._turns = threading.BoundedSemaphore(at_once)
        handover.remove_orphans()  # what a killed server left in memory: once per service, not at every page run

    def start(self) -> None:
        """Start the prepared reader now (its imports take seconds), so that the first read does not wait for it."""
        PREPARED.start()

    def read(self, paths: Sequence[str | Path], folder: str | Path, orientation: str = "auto",
             on_progress: Callable[[ReadProgress], None] | None = None) -> tuple[ad.AnnData, list[str]]:
        """Read ``paths`` (one file, or a 10x triplet: :func:`scvi_core.io.read_files`) in a bounded process that
        writes its result into ``folder``. Returns ``(adata, notices)``; raises :class:`DataLoadError` with the
        reader's message, or with what it needed when it was stopped."""
        paths = [Path(p) for p in paths]
        name = paths[0].name if len(paths) == 1 else ", ".join(p.name for p in paths)
        with self._bounded({"paths": [str(p) for p in paths], "orientation": orientation}, paths, name, folder,
                           on_progress) as (outcome, prefix):
            return handover.take(prefix, outcome["handed"]), list(outcome["notices"])

    def open_model(self, model: str | Path, name: str, folder: str | Path, store: RunStore,
                   data: str | Path | None = None, counts_place: str | None = None, dataset_name: str | None = None,
                   on_progress: Callable[[ReadProgress], None] | None = None) -> tuple[str, list[str]]:
        """Open the saved model at ``model`` (a folder or a zip; ``name``: what the user calls it) on the .h5ad
        ``data`` (counts at ``counts_place``) or on its own cells, as a finished run of ``store``, in a bounded
        process that writes the run into ``folder`` (:func:`dashboard.model_opening.stage`). Returns the run's id
        and what was changed on the way; raises :class:`DataLoadError` as :meth:`read` does."""
        model = Path(model)
        files = [*(model.iterdir() if model.is_dir() else [model]), *([Path(data)] if data else [])]
        request = {"task": "open_model", "model": str(model), "name": name, "data": str(data) if data else None,
                   "counts_place": counts_place, "dataset_name": dataset_name}
        with self._bounded(request, files, name, folder, on_progress) as (outcome, _):
            return store.adopt(Path(outcome["run"])), list(outcome["notices"])

    @contextlib.contextmanager
    def _bounded(self, request: dict, files: Sequence[Path], name: str, folder: str | Path,
                 on_progress: Callable[[ReadProgress], None] | None) -> Iterator[tuple[dict, Path]]:
        """Do ``request`` in a forked reader, one of at most ``at_once``, and yield its outcome and the prefix of
        what it wrote (removed afterwards); a failure raises :class:`DataLoadError`."""
        file_bytes = sum(p.stat().st_size for p in files if p.is_file())
        report = on_progress or (lambda progress: None)
        began, turn = time.monotonic(), self._turns.acquire(blocking=False)
        while not turn:
            report(ReadProgress(name, time.monotonic() - began, file_bytes, waiting=True))
            turn = self._turns.acquire(timeout=PROGRESS_EVERY_S)
        prefix = Path(folder) / f"read-{secrets.token_hex(6)}"
        try:
            pid, base = PREPARED.fork({**request, "output": str(prefix), "runs": str(_staged_runs(prefix)),
                                       "in_memory": str(handover.in_memory_prefix(prefix)),
                                       "memory_bytes": self.memory_bytes})
            outcome = self._watch(pid, base, prefix, ReadProgress(name, 0.0, file_bytes), report)
        finally:
            self._turns.release()
        try:
            self._check(outcome, name)
            yield outcome, prefix
        finally:
            for leftover in (*handover.files(prefix), prefix.with_suffix(".json")):
                leftover.unlink(missing_ok=True)  # a mapped matrix keeps its pages until it is freed
            shutil.rmtree(_staged_runs(prefix), ignore_errors=True)

    def _watch(self, pid: int, base: int, prefix: Path, progress: ReadProgress,
               report: Callable[[ReadProgress], None]) -> dict:
        """Wait for the reader's outcome, killing it past its memory or time; what happened, as the reader's JSON
        object or {"stopped": "memory" | "time" | "crashed"}."""
        outcome_file = prefix.with_suffix(".json")
        began, reported, start_read = time.monotonic(), 0.0, processes.bytes_read(pid)
        while True:
            if outcome_file.exists():
                return json.loads(outcome_file.read_text())
            if not processes.is_running(pid):
                return json.loads(outcome_file.read_text()) if outcome_file.exists() else {"stopped": "crashed"}
            used = max(0, processes.resident_bytes(pid) - base)
            seconds = time.monotonic() - began
            stopped = "memory" if used > self.memory_bytes else "time" if seconds > self.timeout_s else None
            if stopped:
                _kill(pid)
                log.warning("Reader %d stopped (%s): %s used, %.0f s", pid, stopped, format_bytes(used), seconds)
                return {"stopped": stopped}
            if seconds - reported >= PROGRESS_EVERY_S:
                reported = seconds
                now_read = processes.bytes_read(pid)
                read = None if now_read is None or start_read is None else now_read - start_read
                report(ReadProgress(progress.name, seconds, progress.file_bytes, read, used))
            time.sleep(POLL_SECONDS)

    def _check(self, outcome: dict, name: str) -> None:
        """Raise :class:`DataLoadError`, in words, unless the reader ended with a result."""
        if "notices" in outcome:
            return
        if "error" in outcome:
            raise DataLoadError(outcome["error"])
        stopped = outcome.get("stopped")
        if outcome.get("out_of_memory") or stopped == "memory":
            raise DataLoadError(
                f"Reading '{name}' needs more than {format_bytes(self.memory_bytes)} of memory, more than one file "
                "may use on this server, so it was stopped (other sessions were not affected). Make the file "
                "smaller (fewer cells, or only the genes you need), or convert it to .h5ad and copy it into the "
                f"server's data directory ({settings.data_dir()}): large .h5ad files there are opened on disk "
                f"without loading them. The limit is set by {settings.READER_MEMORY_ENV}.")
        if stopped == "time":
            raise DataLoadError(
                f"Reading '{name}' took more than {self.timeout_s:g} s, so it was stopped. Convert it to .h5ad, "
                "which reads in seconds, or copy it into the server's data directory "
                f"({settings.data_dir()}). The limit is set by {settings.READ_TIMEOUT_ENV}.")
        raise DataLoadError(
            f"The process reading '{name}' ended before it finished (other sessions were not affected): the file may "
            "be damaged, or in a form its reader cannot handle. Export or copy it again in full, or convert it to "
            ".h5ad.")


class PreparedReader:
    """The process's one :mod:`dashboard.reader`, whose imports are done: every read of every session is a fork of
    it. Started again when it has gone."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        with self._lock:
            self._running()

    def fork(self, request: dict) -> tuple[int, int]:
        """Hand ``request`` over; the forked reader's pid and the memory it starts with (shared with the prepared
        reader: what the imports take)."""
        with self._lock:
            for _ in range(2):  # a prepared reader that died (killed by someone) is started again once
                process = self._running()
                try:
                    process.stdin.write(json.dumps(request) + "\n")
                    process.stdin.flush()
                    answer = process.stdout.readline().strip()
                except OSError:
                    answer = ""
                if answer.isdigit():
                    return int(answer), processes.resident_bytes(process.pid)
                self._end()
        raise DataLoadError("The process that reads files could not be started; the server's log says why. Try "
                            "again, and if it fails again, tell whoever runs this server.")

    def forked(self) -> list[int]:
        """The readers forked from it that are reading now."""
        return [] if self._process is None else processes.children(self._process.pid)

    def _running(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen([sys.executable, "-m", "dashboard.reader"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, cwd=PROJECT_ROOT, text=True)
        return self._process

    def _end(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


PREPARED = PreparedReader()


def _kill(pid: int, wait_s: float = 5.0) -> None:
    """Kill a reader and wait (a little) until it is gone, so that its memory is given back when the user reads
    why it was stopped."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # it has just ended
    deadline = time.monotonic() + wait_s
    while processes.is_running(pid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def _staged_runs(prefix: Path) -> Path:
    """Where a reader writes the run it opens (beside its other outputs, in the session's folder)."""
    return prefix.with_suffix(".runs")


_SERVICE: ReadingService | None = None
_SERVICE_LOCK = threading.Lock()


def reading_service() -> ReadingService:
    """The one ReadingService of this process, shared by every session (its limits read from the environment when
    it is first asked for)."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = ReadingService()
        return _SERVICE
