"""The one training service of this process per runs directory, shared by every page and browser session: the
local worker processes (:class:`dashboard.service.TrainingService`) unless ``SCVI_DASHBOARD_CLUSTER`` names a Dask
cluster (:class:`dashboard.cluster.ClusterTrainingService`)."""

from __future__ import annotations

import threading
from pathlib import Path

from . import settings
from .cluster import ClusterTrainingService
from .service import TrainingService

_SERVICES: dict[Path, TrainingService] = {}
_SERVICES_LOCK = threading.Lock()


def close_all() -> None:
    """Close every service of this process (tests; runs in their workers carry on)."""
    with _SERVICES_LOCK:
        for service in _SERVICES.values():
            service.close()
        _SERVICES.clear()


def service_for(runs_dir: str | Path) -> TrainingService:
    """The one training service of this process for ``runs_dir``, shared by every page and browser session: runs
    train in this server's worker processes, or on the Dask cluster that ``SCVI_DASHBOARD_CLUSTER`` names."""
    root = Path(runs_dir).resolve()
    with _SERVICES_LOCK:
        if root not in _SERVICES:
            cluster = settings.cluster()
            _SERVICES[root] = TrainingService(root) if cluster is None else ClusterTrainingService(root, cluster)
        return _SERVICES[root]
