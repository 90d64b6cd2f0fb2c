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
    adapt: {minimum_jobs: 0, maximum_jobs: 4}     # or: jobs: 2

Each job runs one Dask worker (``processes: 1``, the default here), which trains one run at a time with the job's
cores. The cluster's scheduler then runs inside the dashboard's process, so a dashboard restart ends the runs
training on it (they are shown as failed, with what they kept); a scheduler started on its own
(``SCVI_DASHBOARD_CLUSTER=tcp://…``) keeps them training across restarts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

BATCH_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                 "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster"}
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


def build(path: str | Path):
    """The dask-jobqueue cluster the file describes, not yet scaled (its scheduler starts in this process)."""
    import dask_jobqueue  # noqa: PLC0415 - only a cluster file needs it

    system, options, _ = read(path)
    return getattr(dask_jobqueue, BATCH_SYSTEMS[system])(**options)


def start(path: str | Path):
    """The cluster :func:`build` makes, asked for its jobs (or to adapt to the queue)."""
    cluster = build(path)
    scale = read(path)[2]
    if "adapt" in scale:
        cluster.adapt(**scale["adapt"])
    else:
        cluster.scale(jobs=scale["jobs"])
    return cluster
