"""A batch-system cluster described in a file, so that a Slurm (PBS, SGE, LSF, HTCondor) user writes configuration,
not code: ``SCVI_DASHBOARD_CLUSTER=cluster.yaml``.

The file names one dask-jobqueue cluster class by its batch system and gives its arguments as dask-jobqueue
documents them, plus how many jobs to keep (``jobs``) or how far to adapt to the queue (``adapt``)::

    slurm:                      # dask_jobqueue.SLURMCluster(**these)
      cores: 8
      memory: 32GB
      walltime: "04:00:00"
      queue: gpu
      job_extra_directives: ["--gres=gpu:1"]
      worker_extra_args: ["--resources", "GPU=1"]
    adapt: {minimum_jobs: 0, maximum_jobs: 4}     # a job per run training or waiting; or: jobs: 2

Each job runs one Dask worker (``processes: 1``, the default here), which trains one run at a time with the job's
cores. The cluster's scheduler then runs inside the dashboard's process, so a dashboard restart ends the runs
training on it (they are shown as failed, with what they kept); a scheduler started on its own
(``SCVI_DASHBOARD_CLUSTER=tcp://…``) keeps them training across restarts.
"""

from __future__ import annotations

import importlib
import signal
import sys
import tomllib
from pathlib import Path

import yaml

BATCH_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                 "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster",
                 "local": "local.LocalCluster"}
"""Each batch system's dask-jobqueue class; ``local`` runs each job as a process of this machine, to try a file
out before the queue sees it."""
SUFFIXES = (".yaml", ".yml", ".toml")


def is_cluster_file(cluster: str) -> bool:
    """Whether ``SCVI_DASHBOARD_CLUSTER`` names a file rather than a scheduler's address."""
    return cluster.lower().endswith(SUFFIXES)


def read(path: str | Path) -> tuple[str, dict, dict]:
    """(batch system, the cluster class's arguments, how to scale it: ``{"jobs": n}`` or ``{"adapt": {...}}``);
    ``ValueError`` in words for a file that does not say this."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
        spec = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except OSError as err:
        raise ValueError(f"Cannot read the cluster file {path}: {err.strerror}.") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"The cluster file {path} is not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"The cluster file {path} must hold a table such as `slurm: {{cores: 8, memory: 32GB}}`.")
    systems = [name for name in spec if name in BATCH_SYSTEMS]
    unknown = set(spec) - set(BATCH_SYSTEMS) - {"jobs", "adapt"}
    if len(systems) != 1 or unknown:
        raise ValueError(f"The cluster file {path} must name one batch system ({', '.join(BATCH_SYSTEMS)}) and may "
                         f"add `jobs` or `adapt`; it has {', '.join(map(str, spec)) or 'nothing'}.")
    options = {"processes": 1, **(spec[systems[0]] or {})}
    scale = {"adapt": spec["adapt"]} if "adapt" in spec else {"jobs": int(spec.get("jobs", 1))}
    return systems[0], options, scale


def build(system: str, options: dict):
    """The dask-jobqueue cluster of ``system`` with ``options`` (as :func:`read` gives them), with no job yet (its
    scheduler starts in this process)."""
    module, _, name = f"dask_jobqueue.{BATCH_SYSTEMS[system]}".rpartition(".")
    return getattr(_import_jobqueue(module), name)(**options)


def _import_jobqueue(module: str):
    """Import a dask-jobqueue module without the SIGINT handler its ``runner`` module installs when imported: that
    works only in the main thread (the dashboard builds the cluster in its dispatcher thread) and would replace the
    web server's own Ctrl-C handling."""
    if module in sys.modules:
        return sys.modules[module]
    install = signal.signal
    signal.signal = lambda *_: None
    try:
        return importlib.import_module(module)
    finally:
        signal.signal = install


def jobs_wanted(scale: dict, demand: int, current: int) -> int:
    """How many jobs to keep, given the runs training or waiting (``demand``) and the jobs asked for now: the
    file's ``jobs``; or, adapting, one per run within ``minimum_jobs`` … ``maximum_jobs``, never fewer than now while
    a run trains or waits (a job is cut only when the queue is empty, so a busy one never is).

    Why not Dask's own ``adapt``: the dashboard hands a run to Dask only when a worker is free to train it, so Dask
    would never see work waiting and never ask for a job; and its scaling down may pick a job that trains."""
    if "jobs" in scale:
        return scale["jobs"]
    least, most = scale["adapt"].get("minimum_jobs", 0), scale["adapt"].get("maximum_jobs", 1)
    if demand == 0:
        return least
    return max(current, min(most, max(least, demand)))
