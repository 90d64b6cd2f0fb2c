"""Training one model on N processes with DistributedDataParallel: ``model.train(devices=N)``, or a ``torchrun``
launch on a cluster (:mod:`scvi_core.torchrun`).

``model.train(devices=N)`` makes the calling process rank 0 and starts ranks 1 … N−1 itself (``spawn``: a script
or a notebook alike). Why the caller is rank 0: its module is the one trained, so the weights and the history are
there when ``train`` returns, with nothing to send back; the ``callback`` and ``stop_event`` work as in one process.
The other ranks get a pickled copy of the module and of the data (in memory: one copy of the counts per process)
and exit when training ends. They meet through a file store in a temporary folder (no port to choose). On GPUs
rank k trains on ``cuda:k`` with NCCL; on CPUs all ranks use gloo and share the machine's cores.

On a cluster, every rank runs the same script (:mod:`scvi_core.torchrun`), and ``train_module`` trains inside the
process group that ``torchrun`` set up.

When it pays: only when one epoch is long, i.e. many cells, on several GPUs. Each step waits for the gradients of
every rank, so small data train slower (published: 2 and 4 GPUs were 2× and 3× slower than one at batch size 128
on Census-scale loaders; ``benchmarks/train_speed.py --devices 2`` measures it here).
"""

from __future__ import annotations

import datetime
import os
import tempfile
import threading
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ._loop import TrainingEvent, TrainingResult, TrainSettings, train_module

TIMEOUT = datetime.timedelta(minutes=2)
"""How long a rank waits for the others (to meet, or at a step) before it gives up with an error: a rank that
crashed must not leave the others waiting for ever."""


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, rank: int) -> torch.device:
    """``cuda:rank`` on GPUs (one per rank), the CPU otherwise."""
    return torch.device("cuda", rank) if device.type == "cuda" else device


def check_devices(devices: int, device: torch.device) -> None:
    if not (isinstance(devices, int) and devices >= 1):
        raise ValueError(f"devices must be a whole number ≥ 1; got {devices!r}.")
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ValueError(f"devices={devices}, but this machine has {torch.cuda.device_count()} GPU(s). Use at most "
                         "that many, or device='cpu' for CPU processes.")


def train_on_devices(module: torch.nn.Module, data, settings: TrainSettings, *, devices: int, device: torch.device,
                     callback: Callable[[TrainingEvent], None] | None = None,
                     stop_event: threading.Event | None = None) -> TrainingResult:
    """Train ``module`` in place on ``devices`` processes (this one is rank 0), as :func:`train_module` does in one;
    see the module docstring."""
    check_devices(devices, device)
    threads = torch.get_num_threads()
    per_rank = max(1, threads // devices) if device.type == "cpu" else threads
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="scvi-ddp-") as folder:
        init_method = f"file://{os.path.join(folder, 'rendezvous')}"
        ranks = [context.Process(target=_other_rank, daemon=True,  # rank 0 reports, and shares its stop
                                 args=(rank, devices, init_method, module, data, device, per_rank, settings))
                 for rank in range(1, devices)]
        for process in ranks:
            process.start()
        torch.set_num_threads(per_rank)
        dist.init_process_group(backend_for(device), init_method=init_method, rank=0, world_size=devices,
                                timeout=TIMEOUT)
        try:
            return train_module(module, data, settings, device=rank_device(device, 0), callback=callback,
                                stop_event=stop_event)
        finally:
            dist.destroy_process_group()
            torch.set_num_threads(threads)
            for process in ranks:
                process.join(TIMEOUT.total_seconds())


def _other_rank(rank, world_size, init_method, module, data, device, threads, settings) -> None:
    """Ranks 1 … N−1 of :func:`train_on_devices`: the same training, then exit."""
    torch.set_num_threads(threads)
    dist.init_process_group(backend_for(device), init_method=init_method, rank=rank, world_size=world_size,
                            timeout=TIMEOUT)
    try:
        train_module(module, data, settings, device=rank_device(device, rank))
    finally:
        dist.destroy_process_group()
