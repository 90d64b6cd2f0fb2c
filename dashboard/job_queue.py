"""The training queue: which runs wait, which train in which slot, and which were asked to stop.

Why a small SQLite table (the standard library's ``sqlite3``) rather than a queue library or a broker: the queue holds
a few dozen rows, must survive a server restart, and must be shared by every session and by any second server
process on the same runs directory. SQLite gives all three with transactions (two servers can never claim the same
slot) and nothing for a user to install or run; huey or Celery would add a dependency and a consumer process to
manage for the same few rows, and Redis a server. The run's own record (settings, status, history, model) stays in
its folder (:mod:`dashboard.runs`); this table only orders and assigns.

One row per run: ``queued`` → ``running`` (a slot and a worker pid) → ``done``.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT UNIQUE NOT NULL,
    owner TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    slot INTEGER,
    pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    submitted REAL NOT NULL,
    started REAL,
    estimate_seconds REAL
)
"""


@dataclass(frozen=True)
class Job:
    """One row of the queue."""

    seq: int
    run_id: str
    owner: str | None
    state: str
    slot: int | None
    pid: int | None
    stop_requested: bool
    submitted: float
    started: float | None
    estimate_seconds: float | None


class JobQueue:
    """The job table in ``path`` (created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._transaction() as db:
            db.execute(SCHEMA)

    @contextmanager
    def _transaction(self):
        """One immediate transaction: it takes the write lock at once, so a read-then-write (claiming a slot) cannot
        interleave with another process's."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _select(self, where: str = "1", args: tuple = ()) -> list[Job]:
        """A plain read: one SELECT sees a consistent table and needs no write lock (pages and the dispatcher read
        several times a second; an immediate transaction would make each read a locked, committed write)."""
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY seq", args).fetchall()
        finally:
            db.close()
        return [Job(**{**dict(row), "stop_requested": bool(row["stop_requested"])}) for row in rows]

    # ---- writing ------------------------------------------------------------------------------------------
    def enqueue(self, run_id: str, owner: str | None, estimate_seconds: float | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (run_id, owner, state, submitted, estimate_seconds) VALUES (?, ?, 'queued', "
                       "?, ?)", (run_id, owner, time.time(), estimate_seconds))

    def claim(self, n_slots: int) -> Job | None:
        """The oldest queued job, now running in the lowest free slot; None when every slot is busy or none waits."""
        with self._transaction() as db:
            busy = {row[0] for row in db.execute("SELECT slot FROM jobs WHERE state = 'running'")}
            free = [slot for slot in range(n_slots) if slot not in busy]
            row = db.execute("SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if not free or row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', slot = ?, started = ? WHERE seq = ?",
                       (free[0], time.time(), row[0]))
        return self._select("seq = ?", (row[0],))[0]

    def set_pid(self, run_id: str, pid: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET pid = ? WHERE run_id = ?", (pid, run_id))

    def finish(self, run_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'done' WHERE run_id = ?", (run_id,))

    def cancel(self, run_id: str) -> bool:
        """Take a queued job out of the queue; False when it is not waiting (already started or done)."""
        with self._transaction() as db:
            return db.execute("UPDATE jobs SET state = 'done' WHERE run_id = ? AND state = 'queued'",
                              (run_id,)).rowcount == 1

    def request_stop(self, run_id: str) -> Job | None:
        """Mark a running job as asked to stop (every session then shows "Stopping…"); the job, or None when it is
        not running."""
        with self._transaction() as db:
            changed = db.execute("UPDATE jobs SET stop_requested = 1 WHERE run_id = ? AND state = 'running'",
                                 (run_id,)).rowcount
        return self.get(run_id) if changed else None

    # ---- reading ------------------------------------------------------------------------------------------
    def get(self, run_id: str) -> Job | None:
        jobs = self._select("run_id = ?", (run_id,))
        return jobs[0] if jobs else None

    def waiting(self) -> list[Job]:
        """Queued jobs, first to start first."""
        return self._select("state = 'queued'")

    def running(self) -> list[Job]:
        return self._select("state = 'running'")
