"""What one process of a data-parallel run needs to know about the others: its rank, their number, and sums
over all of them.

Why a module of its own: the training loop, the BatchNorm layers and the launcher (:mod:`scvi_core.train._data_parallel`)
all ask the same questions, and outside a data-parallel run (no ``torch.distributed`` process group) every answer
must be the one-process one, at no cost, so that ``devices=1`` stays today's code path.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def rank_and_size() -> tuple[int, int]:
    """(rank, world size) of this process's group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_data_parallel() -> bool:
    return rank_and_size()[1] > 1


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over every process (in place), the tensor itself in one process."""
    if is_data_parallel():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set in any process: a stop asked of rank 0 ends every rank at the same minibatch."""
    if not is_data_parallel():
        return flag
    return bool(sum_over_processes(torch.tensor([float(flag)], device=device)).item() > 0)
