"""User-facing models (the scvi-tools API): SCVI and AUTOZI, what they share (``_base``), saving and opening them in
this library's layout or scvi-tools' (``_save_load``, ``_scvi_tools``), and a saved model opened whichever it is, from a
folder or one zip file (``_open``)."""

from ._autozi import AUTOZI
from ._base import BaseModel
from ._open import MODELS, SavedModel, describe, load_model, model_zip_bytes, opened
from ._scvi import SCVI

__all__ = ["AUTOZI", "BaseModel", "SCVI", "MODELS", "SavedModel", "describe", "load_model", "model_zip_bytes",
           "opened"]
