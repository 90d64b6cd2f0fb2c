"""scvi_core: scVI and AutoZI in plain PyTorch, usable from a notebook without the dashboard.

Subpackages, each re-exporting its private files (``docs/architecture.md`` draws the map): ``data`` (registration,
count checks, minibatches, on-disk matrices, preparation, simulation), ``io`` (readers, within limits), ``datasets``
(data shipped with the package), ``distributions`` and ``nn`` (the building blocks), ``module`` (each model's math),
``model`` (the user API: SCVI, AUTOZI), ``train`` (the loop, data-parallel training), ``de`` (differential
expression), ``zi`` (zero inflation), ``embedding`` (neighbours, UMAP, Leiden).
"""

from .data import CountsError, setup_anndata, simulate
from .model import AUTOZI, SCVI
from .train import TrainingDivergedError, TrainingEvent

__all__ = ["SCVI", "AUTOZI", "simulate", "setup_anndata", "CountsError", "TrainingDivergedError", "TrainingEvent"]
