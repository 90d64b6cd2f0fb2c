"""Training one model on N processes with DistributedDataParallel: ``model.train(devices=N)``, or a ``torchrun``
launch of this module on a cluster.

``model.train(devices=N)`` makes the calling process rank 0 and starts ranks 1 … N−1 itself (``spawn``: a script
or a notebook alike). Why the caller is rank 0: its module is the one trained, so the weights and the history are
there when ``train`` returns, with nothing to send back; the ``callback`` and ``stop_event`` work as in one process.
The other ranks get a pickled copy of the module and of the data (in memory: one copy of the counts per process)
and exit when training ends. They meet through a file store in a temporary folder (no port to choose). On GPUs
rank k trains on ``cuda:k`` with NCCL; on CPUs all ranks use gloo and share the machine's cores.

On a cluster, every rank runs the same script, and ``train_module`` trains inside the process group that
``torchrun`` set up::

    torchrun --standalone --nproc_per_node=2 -m scvi_core.data_parallel data.h5ad saved_model --batch-key batch

Rank 0 saves the model; load it anywhere with ``SCVI.load(saved_model, adata)``.

When it pays: only when one epoch is long, i.e. many cells, on several GPUs. Each step waits for the gradients of
every rank, so small data train slower (published: 2 and 4 GPUs were 2× and 3× slower than one at batch size 128
on Census-scale loaders; ``benchmarks/train_speed.py --devices 2`` measures it here).
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .train import TrainingResult, train_module

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


def train_on_devices(module: torch.nn.Module, data, devices: int, device: torch.device, **train_args) -> TrainingResult:
    """Train ``module`` in place on ``devices`` processes (this one is rank 0); see the module docstring."""
    check_devices(devices, device)
    threads = torch.get_num_threads()
    per_rank = max(1, threads // devices) if device.type == "cpu" else threads
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="scvi-ddp-") as folder:
        init_method = f"file://{os.path.join(folder, 'rendezvous')}"
        others_args = {**train_args, "callback": None, "stop_event": None}  # rank 0 reports, and shares its stop
        ranks = [context.Process(target=_other_rank, daemon=True,
                                 args=(rank, devices, init_method, module, data, device, per_rank, others_args))
                 for rank in range(1, devices)]
        for process in ranks:
            process.start()
        torch.set_num_threads(per_rank)
        dist.init_process_group(backend_for(device), init_method=init_method, rank=0, world_size=devices,
                                timeout=TIMEOUT)
        try:
            return train_module(module, data, device=rank_device(device, 0), **train_args)
        finally:
            dist.destroy_process_group()
            torch.set_num_threads(threads)
            for process in ranks:
                process.join(TIMEOUT.total_seconds())


def _other_rank(rank, world_size, init_method, module, data, device, threads, train_args) -> None:
    """Ranks 1 … N−1 of :func:`train_on_devices`: the same training, then exit."""
    torch.set_num_threads(threads)
    dist.init_process_group(backend_for(device), init_method=init_method, rank=rank, world_size=world_size,
                            timeout=TIMEOUT)
    try:
        train_module(module, data, device=rank_device(device, rank), **train_args)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """The ``torchrun`` entry point (see the module docstring): every rank reads the file, rank 0 saves."""
    import anndata as ad

    from .model import AUTOZI, SCVI

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("h5ad")
    parser.add_argument("save_dir")
    parser.add_argument("--model", choices=("SCVI", "AUTOZI"), default="SCVI")
    parser.add_argument("--batch-key")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=128, help="cells per process and step")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = rank_device(torch.device("cuda" if cuda else "cpu"), int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend_for(device), timeout=TIMEOUT)  # torchrun's environment says where
    try:
        model_class = {"SCVI": SCVI, "AUTOZI": AUTOZI}[args.model]
        adata = ad.read_h5ad(args.h5ad)
        model_class.setup_anndata(adata, batch_key=args.batch_key)
        model = model_class(adata)
        model.train(max_epochs=args.max_epochs, batch_size=args.batch_size, device=device)
        if dist.get_rank() == 0:
            model.save(args.save_dir, overwrite=True)
            print(model.stop_info.message)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
