"""scvi_core: scVI and AutoZI in plain PyTorch, usable from a notebook without the dashboard."""

from .counts import CountsError
from .data import setup_anndata
from .model import AUTOZI, SCVI
from .simulate import simulate
from .train import TrainingDivergedError, TrainingEvent

__all__ = ["SCVI", "AUTOZI", "simulate", "setup_anndata", "CountsError", "TrainingDivergedError", "TrainingEvent"]
