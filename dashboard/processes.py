"""What Linux's ``/proc`` says about the dashboard's worker processes: whether one is running, its memory, and how
much it has read. The training service and the reading service watch their workers with these."""

from __future__ import annotations

from pathlib import Path


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a process that has ended but was not waited for)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def status_bytes(pid: int, field: str) -> int:
    """A size in ``/proc/<pid>/status`` (``VmRSS``, ``VmSize``, …) in bytes; 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` alone (0 for a process that is gone)."""
    return status_bytes(pid, "VmRSS")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that are still there (none for a process that is gone)."""
    try:
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    except OSError:
        return []


def process_tree_resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and of every process it started, and they started (0 for a process that is
    gone)."""
    return resident_bytes(pid) + sum(process_tree_resident_bytes(child) for child in children(pid))


def bytes_read(pid: int) -> int | None:
    """How many bytes ``pid`` has read from files so far (``rchar``); None when the kernel does not say."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
