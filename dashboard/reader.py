"""Data files read outside the web server: ``python -m dashboard.reader``, one process that forks a reader per file.

Why: the server is one process shared by every session, so a file that expands past what the machine holds, or a
reader that crashes on a damaged file, must end a process of its own, never the server. The limits of
:mod:`scvi_core.io`'s limits refuse most such files before any work; this process is the backstop for what they cannot
foresee. It imports the readers (scanpy, anndata: seconds) once; each read is then a fork of it, ready at once,
that gives all its memory back when it exits.

The protocol is one JSON line per read on stdin, ``{"paths": [...], "orientation": ..., "output": PREFIX,
"memory_bytes": N}``, answered by the forked reader's pid on stdout. The reader hands the AnnData over at
``PREFIX`` (its matrices at ``"in_memory"`` when there is room: :mod:`dashboard.handover`) and then writes
``PREFIX.json``: ``{"notices": [...], "handed": {...}}``, ``{"error": message}`` or ``{"out_of_memory":
true}``. A request with ``"task": "open_model"`` opens a saved model as a run instead
(:func:`dashboard.model_opening.stage`, which says what else it carries); its ``PREFIX.json`` names the run's folder. Its address space is limited to what it had when forked plus ``memory_bytes`` (and a margin for the
libraries a read loads), so that an allocation past it fails at once; :mod:`dashboard.reading` watches its memory
and time, and kills it past either. Forked readers are reaped by the kernel (SIGCHLD ignored here), so a reader's
pid is alive exactly while it reads.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import resource
import signal
import sys
from pathlib import Path

from scvi_core import io  # the readers' imports (scanpy, anndata, h5py) happen here, once

from . import handover, model_opening, processes

ADDRESS_MARGIN_BYTES = 256 * 2**20
"""Address space a reader may take beyond its memory budget: the libraries a first read of a format loads."""


def read(request: dict) -> dict:
    """Read the files of ``request``; the outcome as the JSON object described above (the AnnData is handed over)."""
    adata, notices = io.read_files([Path(p) for p in request["paths"]], request.get("orientation", "auto"))
    in_memory = request.get("in_memory")
    return {"notices": notices,
            "handed": handover.give(adata, Path(request["output"]), Path(in_memory) if in_memory else None)}


def outcome_of(request: dict) -> dict:
    """Do what ``request`` asks (read data files, or open a saved model as a run); its outcome, failures in words."""
    try:
        return model_opening.stage(request) if request.get("task") == "open_model" else read(request)
    except io.DataLoadError as err:
        return {"error": str(err)}
    except MemoryError:
        return {"out_of_memory": True}
    except OSError as err:
        if err.errno == errno.ENOMEM:
            return {"out_of_memory": True}
        return {"error": f"Could not read the file: {io.describe_error(err)}."}
    except Exception as err:  # noqa: BLE001 - a reader that fails in a way of its own still ends with words
        return {"error": f"Could not read the file: {io.describe_error(err)}. Check that it is complete and of the "
                         "format its name says."}


def run_forked(request: dict) -> None:
    """In the forked reader: reset what the parent set, limit the address space, read, write the outcome, exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocesses of a reader are waited for as usual
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout is the protocol: stray prints go to the log
    code = 0
    try:
        _limit_address_space(int(request["memory_bytes"]))
        outcome = outcome_of(request)
        prefix = Path(request["output"])
        partial = prefix.with_suffix(".json.part")
        partial.write_text(json.dumps(outcome))
        os.replace(partial, prefix.with_suffix(".json"))
    except BaseException:  # noqa: BLE001 - never return into the parent's loop
        code = 1
    finally:
        os._exit(code)


def _limit_address_space(memory_bytes: int) -> None:
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = processes.status_bytes(os.getpid(), "VmSize") + memory_bytes + ADDRESS_MARGIN_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def main() -> int:
    """Fork a reader per request line until stdin closes (the server went away)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.freeze()  # the imports' objects: a reader's collections never walk (and so never copy) the pages it shares
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_forked(request)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
