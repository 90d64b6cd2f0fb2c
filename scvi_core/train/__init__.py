"""Training SCVI and AUTOZI: the loop both models share (early stopping, KL warm-up, live progress, a stop that acts
within one minibatch, weights kept when a run diverges), and data-parallel training over several processes.

One concept per private file, re-exported here: ``_loop`` (the training loop and its settings), ``_distributed``
(what one process of a data-parallel run knows of the others), ``_data_parallel`` (starting the processes of
``model.train(devices=N)``). The ``torchrun`` entry point is :mod:`scvi_core.torchrun`.
"""

from ._data_parallel import TIMEOUT, backend_for, check_devices, rank_device, train_on_devices
from ._distributed import any_process, is_data_parallel, rank_and_size, sum_over_processes
from ._loop import (
    EARLY_STOPPING_MIN_DELTA,
    EARLY_STOPPING_PATIENCE,
    EARLY_STOPPING_WARMUP_EPOCHS,
    StopInfo,
    TrainingDivergedError,
    TrainingEvent,
    TrainingResult,
    TrainSettings,
    default_max_epochs,
    default_warmup_epochs,
    evaluate,
    resolve_device,
    split_indices,
    train_module,
    validate_settings,
)

__all__ = [
    "TIMEOUT", "backend_for", "check_devices", "rank_device", "train_on_devices",
    "any_process", "is_data_parallel", "rank_and_size", "sum_over_processes",
    "EARLY_STOPPING_MIN_DELTA", "EARLY_STOPPING_PATIENCE", "EARLY_STOPPING_WARMUP_EPOCHS", "StopInfo",
    "TrainingDivergedError", "TrainingEvent", "TrainingResult", "TrainSettings", "default_max_epochs",
    "default_warmup_epochs",
    "evaluate", "resolve_device", "split_indices", "train_module", "validate_settings",
]
