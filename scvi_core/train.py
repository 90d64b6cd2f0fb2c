"""The training loop shared by SCVI and AUTOZI.

Why a hand-written loop rather than a framework: per-step overhead dominates on small models, a UI needs live
progress and a stop button that acts within one minibatch, and a diverging run must not destroy the weights
learnt so far. Losses are accumulated on the device and read once per epoch (no host sync per step).

Algorithm: Adam (lr, eps 0.01, weight decay 1e-6, as in scVI), shuffled minibatches, validation every epoch,
KL warm-up that raises the KL weight linearly per step and reaches 1 after ``n_epochs_kl_warmup`` epochs
(never later than the end of training), optional early stopping on the validation ELBO (restoring the best
weights).
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .data import CountData, minibatch_starts

EARLY_STOPPING_PATIENCE = 45
VALIDATION_BATCH_SIZE = 1024
PROGRESS_INTERVAL_S = 0.25


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite. The weights of the last finite epoch are kept."""


@dataclass
class TrainingEvent:
    """What the ``callback`` of ``train`` receives: progress inside an epoch (``kind="progress"``) or the
    metrics of a finished epoch (``kind="epoch"``, ``metrics`` = that epoch's history row)."""

    kind: str
    epoch: int  # 1-based
    max_epochs: int
    step: int  # minibatches done in this epoch
    steps_per_epoch: int
    cells_per_second: float
    elapsed_seconds: float
    metrics: dict = field(default_factory=dict)


@dataclass
class TrainingResult:
    history: pd.DataFrame
    train_indices: np.ndarray
    validation_indices: np.ndarray


def default_max_epochs(n_cells: int) -> int:
    """scVI's heuristic: 400 epochs up to 20,000 cells, then fewer in proportion (about 8 million cell passes)."""
    return max(1, min(400, round(8e6 / n_cells)))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def split_indices(n_cells: int, train_size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random train / validation split; validation gets ⌊(1 − train_size)·N⌋ cells."""
    permutation = rng.permutation(n_cells)
    n_train = min(n_cells, math.ceil(train_size * n_cells))
    return np.sort(permutation[:n_train]), np.sort(permutation[n_train:])


def validate_settings(n_cells: int, max_epochs: int, lr: float, batch_size: int, train_size: float, early_stopping):
    """Refuse absurd hyperparameters before any work is done, saying what would work."""
    if not (isinstance(max_epochs, int | np.integer) and max_epochs >= 1):
        raise ValueError(f"max_epochs must be a whole number ≥ 1; got {max_epochs!r}.")
    if not (isinstance(lr, float | int) and math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"lr must be in (0, 1]; got {lr!r}. Typical values: 1e-3 (scVI), 1e-2 (AutoZI paper).")
    if not (isinstance(batch_size, int | np.integer) and batch_size >= 2):
        raise ValueError(f"batch_size must be a whole number ≥ 2 (BatchNorm needs two cells); got {batch_size!r}.")
    if not 0 < train_size <= 1:
        raise ValueError(f"train_size must be in (0, 1]; got {train_size!r}.")
    n_train = math.ceil(train_size * n_cells)
    if n_train < 2:
        raise ValueError(f"Only {n_train} training cell(s): at least 2 are needed. Use more cells or a larger train_size.")
    if batch_size > n_train:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {n_train} training cells. Use batch_size ≤ {n_train}."
        )
    if early_stopping and n_cells - n_train < 1:
        raise ValueError("early_stopping needs validation cells: use train_size < 1.")


def _warmup_steps(n_epochs_kl_warmup: int | None, max_epochs: int, steps_per_epoch: int) -> int:
    if n_epochs_kl_warmup is None:
        n_epochs_kl_warmup = max(1, max_epochs // 2)
    elif n_epochs_kl_warmup > max_epochs:
        warnings.warn(
            f"n_epochs_kl_warmup={n_epochs_kl_warmup} exceeds max_epochs={max_epochs}: the KL weight would never "
            f"reach 1 and the model would not fit the true ELBO. Warm-up shortened to {max_epochs} epochs.",
            stacklevel=3,
        )
        n_epochs_kl_warmup = max_epochs
    return max(0, n_epochs_kl_warmup) * steps_per_epoch


class _EpochSums:
    """Device-side sums of one epoch's loss terms; read once at the end."""

    def __init__(self, device):
        self.values = torch.zeros(4, device=device, dtype=torch.float64)  # rec, kl_local, kl_global, loss
        self.cells = 0
        self.steps = 0

    def add(self, terms, loss):
        self.values += torch.stack(
            [terms.reconstruction.sum(), terms.kl_local.sum(), terms.kl_global, loss.detach()]
        ).double()
        self.cells += terms.reconstruction.shape[0]
        self.steps += 1

    def metrics(self, mode: str, n_split: int) -> dict[str, float]:
        rec, kl_local, kl_global, loss = (self.values / torch.tensor([self.cells, self.cells, self.steps, self.steps],
                                                                     device=self.values.device)).tolist()
        return {
            f"elbo_{mode}": rec + kl_local + kl_global / max(n_split, 1),
            f"reconstruction_loss_{mode}": rec,
            f"kl_local_{mode}": kl_local,
            f"kl_global_{mode}": kl_global,
            f"loss_{mode}": loss,
        }


def _diverged_message(epoch: int, lr: float) -> str:
    return (
        f"Training diverged in epoch {epoch}: the loss became NaN or infinite. The weights from the last good "
        f"epoch were kept. Try a smaller learning rate (e.g. lr={lr / 10:g}), a larger batch_size, or a smaller "
        "n_latent / n_hidden; check that the data are raw counts and remove cells with very few counts."
    )


def train_module(
    module: torch.nn.Module,
    data: CountData,
    *,
    max_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    train_size: float = 0.9,
    early_stopping: bool = False,
    early_stopping_patience: int = EARLY_STOPPING_PATIENCE,
    n_epochs_kl_warmup: int | None = None,
    seed: int = 0,
    device: torch.device,
    callback: Callable[[TrainingEvent], None] | None = None,
    stop_event: threading.Event | None = None,
) -> TrainingResult:
    """Fit ``module`` on ``data``. Raises :class:`TrainingDivergedError` (weights of the last finite epoch kept)."""
    validate_settings(data.n_cells, max_epochs, lr, batch_size, train_size, early_stopping)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train_idx, val_idx = split_indices(data.n_cells, train_size, rng)
    steps_per_epoch = len(minibatch_starts(len(train_idx), batch_size))
    warmup_steps = _warmup_steps(n_epochs_kl_warmup, max_epochs, steps_per_epoch)
    n_train = len(train_idx)

    module.to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, eps=0.01, weight_decay=1e-6, fused=True)
    rows: list[dict] = []
    good_state = copy.deepcopy(module.state_dict())
    best = (math.inf, None)  # (validation ELBO, state)
    since_best, global_step, cells_done = 0, 0, 0
    interrupted = False
    start = last_progress = time.perf_counter()

    def report(kind, epoch, step, metrics=None):
        if callback is not None:
            elapsed = time.perf_counter() - start
            callback(TrainingEvent(kind, epoch, max_epochs, step, steps_per_epoch,
                                   cells_done / max(elapsed, 1e-9), elapsed, metrics or {}))

    for epoch in range(1, max_epochs + 1):
        module.train()
        sums = _EpochSums(device)
        for step, batch in enumerate(data.minibatches(train_idx, batch_size, device, rng), start=1):
            kl_weight = 1.0 if warmup_steps == 0 else min(1.0, global_step / warmup_steps)
            terms = module(batch)
            loss = module.loss(terms, kl_weight, n_train)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums.add(terms, loss)
            global_step += 1
            cells_done += batch.size
            if stop_event is not None and stop_event.is_set():
                interrupted = True
                break
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                report("progress", epoch, step)

        row = {"epoch": epoch, "kl_weight": kl_weight, **sums.metrics("train", n_train)}
        if not interrupted and len(val_idx):
            row |= evaluate(module, data, val_idx, device, kl_weight, n_train).metrics("validation", len(val_idx))
            cells_done += len(val_idx)
        if not all(math.isfinite(v) for k, v in row.items() if k != "epoch"):
            module.load_state_dict(good_state)
            module.eval()
            raise TrainingDivergedError(_diverged_message(epoch, lr))
        row["seconds"] = time.perf_counter() - start
        row["partial_epoch"] = interrupted
        rows.append(row)
        good_state = copy.deepcopy(module.state_dict())
        report("epoch", epoch, sums.steps, row)
        if interrupted:
            break
        if early_stopping:
            if row["elbo_validation"] < best[0]:
                best, since_best = (row["elbo_validation"], good_state), 0
            else:
                since_best += 1
                if since_best >= early_stopping_patience:
                    module.load_state_dict(best[1])
                    break
    module.eval()
    return TrainingResult(pd.DataFrame(rows), train_idx, val_idx)


@torch.no_grad()
def evaluate(module, data: CountData, indices: np.ndarray, device, kl_weight: float = 1.0, n_obs: int = 1):
    """Loss terms over ``indices`` in eval mode (BatchNorm running statistics, no dropout)."""
    was_training = module.training
    module.eval()
    sums = _EpochSums(device)
    for batch in data.minibatches(indices, VALIDATION_BATCH_SIZE, device):
        terms = module(batch)
        sums.add(terms, module.loss(terms, kl_weight, n_obs))
    module.train(was_training)
    return sums
