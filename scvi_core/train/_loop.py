"""The training loop shared by SCVI and AUTOZI.

Why a hand-written loop rather than a framework: per-step overhead dominates on small models, a UI needs live
progress and a stop button that acts within one minibatch, and a diverging run must not destroy the weights
learnt so far. Losses are accumulated on the device and read once per epoch (no host sync per step).

Algorithm: Adam (lr, eps 0.01, weight decay 1e-6, as in scVI), shuffled minibatches, validation every epoch,
KL warm-up that raises the KL weight linearly per step and reaches 1 after ``n_epochs_kl_warmup`` epochs
(never later than the end of training), and early stopping on the validation ELBO (on by default).

Early stopping: the weights of the epoch with the best validation ELBO are kept; training ends when
``early_stopping_patience`` epochs after the KL warm-up have brought no epoch that improves it by more than
``EARLY_STOPPING_MIN_DELTA`` of its value (epochs of the warm-up never count: the model is not yet fitting its true
objective), and the best weights are restored, also when ``max_epochs`` comes first. The share keeps a slow creep of
a few hundredths of a percent per epoch, far below what matters (issue 11's goal: 0.5% of the best held-out ELBO),
from holding training for another patience's worth of epochs: on the simulator it stopped at 73 epochs instead of 105
with the same held-out fit. With early stopping the warm-up defaults to ``EARLY_STOPPING_WARMUP_EPOCHS`` (at most
half of ``max_epochs``) instead of half of ``max_epochs``: a warm-up that scales with the epoch cap would make the
cap, not the data, decide where the fit is best. ``benchmarks/time_to_quality.py`` measures the choice of both numbers.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ..data import CountData, minibatch_starts
from ._distributed import any_process, rank_and_size, sum_over_processes

EARLY_STOPPING_PATIENCE = 20
EARLY_STOPPING_MIN_DELTA = 1e-3
"""An epoch resets the patience when it improves the validation −ELBO by more than this share of it."""
EARLY_STOPPING_WARMUP_EPOCHS = 20
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
class StopInfo:
    """Why training ended and whose weights the model holds.

    ``reason``: "early_stopping" (``patience`` epochs without a validation ELBO better by the min delta),
    "max_epochs" (all epochs ran) or "interrupted" (the stop event was set). ``kept_epoch``: the epoch whose weights
    the model holds (the best one with early stopping, else the last). ``best_epoch``: the epoch of the best
    validation ELBO (None without validation cells)."""

    reason: str
    epochs: int
    max_epochs: int
    kept_epoch: int
    best_epoch: int | None = None
    early_stopping: bool = False
    patience: int | None = None

    @property
    def message(self) -> str:
        """One sentence for a person: 'Stopped early at epoch 87 of 400: …'."""
        return self.describe()

    def describe(self, kept: str = "kept") -> str:
        """:attr:`message`, saying of a run stopped by its user that the model trained so far was ``kept`` (the
        dashboard: "saved", with the run)."""
        if self.reason == "interrupted":
            return (f"Stopped by you during epoch {self.epochs} of {self.max_epochs}; the model trained so far was "
                    f"{kept}.")
        if self.reason == "early_stopping":
            return (f"Stopped early at epoch {self.epochs} of {self.max_epochs}: the validation ELBO had not improved "
                    f"by more than {EARLY_STOPPING_MIN_DELTA:.1%} for {self.patience} epochs; the weights of epoch "
                    f"{self.kept_epoch} (the best) were restored.")
        ran = f"Ran all {self.max_epochs} epochs"
        if not self.early_stopping:
            return f"{ran} (early stopping off)."
        if self.kept_epoch == self.epochs:
            return f"{ran}: the validation ELBO was still improving (early stopping did not trigger)."
        return (f"{ran} (early stopping did not trigger); the weights of epoch {self.kept_epoch}, the best on the "
                "validation cells, were restored.")

    def to_dict(self) -> dict:
        return {**asdict(self), "message": self.message}

    @classmethod
    def from_dict(cls, record: dict | None) -> StopInfo | None:
        if not record:
            return None
        return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})


@dataclass
class TrainingResult:
    history: pd.DataFrame
    train_indices: np.ndarray
    validation_indices: np.ndarray
    stop: StopInfo


@dataclass(frozen=True)
class TrainSettings:
    """How a model trains: the one definition of the training arguments, their names and defaults, which
    ``model.train(**settings)`` takes (its signature is made from these fields) and :func:`train_module` reads.

    ``max_epochs=None``: scVI's heuristic (:func:`default_max_epochs`). ``lr=None``: the model's ``default_lr``.
    ``early_stopping`` watches the validation cells' ELBO (``1 − train_size`` of them) and ends training after
    ``early_stopping_patience`` epochs past the KL warm-up without one better by more than 0.1%, restoring the best
    epoch's weights. ``n_epochs_kl_warmup=None``: 20 epochs with early stopping (at most half of ``max_epochs``),
    else the first half of training. ``batch_size`` is per process in data-parallel training.
    ``check_val_every_n_epoch``: the validation cells are evaluated every this many epochs (and at the last), and
    early stopping's patience counts these checks, as in scvi-tools."""

    max_epochs: int | None = None
    lr: float | None = None
    batch_size: int = 128
    train_size: float = 0.9
    early_stopping: bool = True
    early_stopping_patience: int = EARLY_STOPPING_PATIENCE
    n_epochs_kl_warmup: int | None = None
    seed: int = 0
    check_val_every_n_epoch: int = 1


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
        raise ValueError("early_stopping (on by default) needs validation cells: use train_size < 1, or "
                         "early_stopping=False to train all max_epochs.")


def default_warmup_epochs(max_epochs: int, early_stopping: bool) -> int:
    """Half of training; with early stopping at most ``EARLY_STOPPING_WARMUP_EPOCHS`` (see the module docstring)."""
    half = max(1, max_epochs // 2)
    return min(half, EARLY_STOPPING_WARMUP_EPOCHS) if early_stopping else half


def _warmup_steps(n_epochs_kl_warmup: int | None, max_epochs: int, steps_per_epoch: int,
                  early_stopping: bool = False) -> int:
    if n_epochs_kl_warmup is None:
        n_epochs_kl_warmup = default_warmup_epochs(max_epochs, early_stopping)
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

    @torch.no_grad()
    def add(self, terms, loss):
        """Without the graph: a sum that required grad would chain every step's autograd graph to the next one and
        keep them all alive until the epoch ends (about 130 kB a step: 0.9 GB over a 1M-cell epoch)."""
        self.values += torch.stack([terms.reconstruction.sum(), terms.kl_local.sum(), terms.kl_global, loss]).double()
        self.cells += terms.reconstruction.shape[0]
        self.steps += 1

    def shared(self) -> _EpochSums:
        """New sums, of these over every process of a data-parallel run, so that every process reads the same
        metrics (and takes the same early-stopping and divergence decisions)."""
        counts = torch.tensor([self.cells, self.steps], device=self.values.device, dtype=torch.float64)
        totals = sum_over_processes(torch.cat([self.values, counts]))
        shared = _EpochSums(self.values.device)
        shared.values, shared.cells, shared.steps = totals[:4], int(totals[4]), int(totals[5])
        return shared

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
    settings: TrainSettings,
    *,
    device: torch.device,
    callback: Callable[[TrainingEvent], None] | None = None,
    stop_event: threading.Event | None = None,
) -> TrainingResult:
    """Fit ``module`` on ``data`` as ``settings`` say (``max_epochs=None``: :func:`default_max_epochs`; ``lr`` must be
    given). Raises :class:`TrainingDivergedError` (weights of the last finite epoch kept).

    Inside a ``torch.distributed`` process group of N processes (:mod:`scvi_core.train._data_parallel`) each process
    runs this with the same arguments: ``batch_size`` cells per process, so minibatches of N·``batch_size`` cells
    from one shared seeded order, gradients averaged by DistributedDataParallel, validation sums and the stop decisions
    shared; ``callback`` is called in rank 0 only."""
    rank, world_size = rank_and_size()
    if settings.max_epochs is None:
        settings = replace(settings, max_epochs=default_max_epochs(data.n_cells))
    validate_settings(data.n_cells, settings.max_epochs, settings.lr, settings.batch_size * world_size,
                      settings.train_size, settings.early_stopping)
    every = settings.check_val_every_n_epoch
    if not (isinstance(every, int | np.integer) and every >= 1):
        raise ValueError(f"check_val_every_n_epoch must be a whole number ≥ 1; got {every!r}.")
    patience = settings.early_stopping_patience
    if settings.early_stopping and not (isinstance(patience, int | np.integer) and patience >= 1):
        raise ValueError(f"early_stopping_patience must be a whole number ≥ 1; got {patience!r}.")
    rng = np.random.default_rng(settings.seed)  # the same in every process: the same split and minibatch order
    torch.manual_seed(settings.seed + rank)  # each process its own noise (z samples, dropout)
    train_idx, val_idx = split_indices(data.n_cells, settings.train_size, rng)
    val_shard = np.array_split(val_idx, world_size)[rank]
    global_batch = settings.batch_size * world_size
    steps_per_epoch = len(minibatch_starts(len(train_idx), global_batch, world_size))
    warmup_steps = _warmup_steps(settings.n_epochs_kl_warmup, settings.max_epochs, steps_per_epoch,
                                 settings.early_stopping)
    n_train = len(train_idx)

    module.to(device)
    stepper = module if world_size == 1 else _data_parallel(module, device)
    optimizer = torch.optim.Adam(module.parameters(), lr=settings.lr, eps=0.01, weight_decay=1e-6, fused=True)
    rows: list[dict] = []
    good_state = copy.deepcopy(module.state_dict())
    best_value, best_epoch, best_state = math.inf, None, None  # the best validation −ELBO so far
    reference = math.inf  # the validation −ELBO of the last epoch that reset the patience
    since_best, global_step, cells_done = 0, 0, 0
    interrupted, reason = False, "max_epochs"
    start = last_progress = time.perf_counter()

    def report(kind, epoch, step, metrics=None):
        if callback is not None and rank == 0:
            elapsed = time.perf_counter() - start
            callback(TrainingEvent(kind, epoch, settings.max_epochs, step, steps_per_epoch,
                                   cells_done / max(elapsed, 1e-9), elapsed, metrics or {}))

    for epoch in range(1, settings.max_epochs + 1):
        module.train()
        sums = _EpochSums(device)
        batches = data.minibatches(train_idx, global_batch, device, rng, shard=(rank, world_size))
        for step, batch in enumerate(batches, start=1):
            kl_weight = 1.0 if warmup_steps == 0 else min(1.0, global_step / warmup_steps)
            terms = stepper(batch)
            loss = module.loss(terms, kl_weight, n_train)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums.add(terms, loss)
            global_step += 1
            cells_done += batch.size * world_size
            if any_process(stop_event is not None and stop_event.is_set(), device):
                interrupted = True
                break
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                report("progress", epoch, step)

        row = {"epoch": epoch, "kl_weight": kl_weight, **sums.shared().metrics("train", n_train)}
        checked = not interrupted and len(val_idx) and (epoch % settings.check_val_every_n_epoch == 0
                                                         or epoch == settings.max_epochs)
        if checked:
            validation = evaluate(module, data, val_shard, device, kl_weight, n_train).shared()
            row |= validation.metrics("validation", len(val_idx))
            cells_done += len(val_idx)
        if not all(math.isfinite(v) for k, v in row.items() if k != "epoch"):  # (a skipped check is absent)
            module.load_state_dict(good_state)
            module.eval()
            raise TrainingDivergedError(_diverged_message(epoch, settings.lr))
        row["seconds"] = time.perf_counter() - start
        row["partial_epoch"] = interrupted
        rows.append(row)
        good_state = copy.deepcopy(module.state_dict())
        if checked:
            value = row["elbo_validation"]
            if value < best_value:
                best_value, best_epoch = value, epoch
                if settings.early_stopping:
                    best_state = good_state
            if reference == math.inf or value < reference - EARLY_STOPPING_MIN_DELTA * abs(reference):
                reference, since_best = value, 0
            elif kl_weight >= 1.0:  # epochs of the KL warm-up never count against the patience
                since_best += 1
        report("epoch", epoch, sums.steps, row)
        if interrupted:
            reason = "interrupted"
            break
        if settings.early_stopping and since_best >= settings.early_stopping_patience:
            reason = "early_stopping"
            break
    kept = len(rows)
    if settings.early_stopping and reason != "interrupted" and best_state is not None and best_epoch != kept:
        module.load_state_dict(best_state)
        kept = best_epoch
    module.eval()
    stop = StopInfo(reason, len(rows), settings.max_epochs, kept, best_epoch, settings.early_stopping,
                    settings.early_stopping_patience if settings.early_stopping else None)
    return TrainingResult(pd.DataFrame(rows), train_idx, val_idx, stop)


def _data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` wrapped for DistributedDataParallel: its parameters are broadcast from rank 0 now, and its
    gradients averaged over the processes at every step. The running BatchNorm statistics are the same in every
    process (:class:`scvi_core.nn.BatchNorm`), so they are not broadcast at every step."""
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)


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
