"""User-facing models (the scvi-tools API): SCVI and AUTOZI, what they share (``_base``), saving and opening them in
this library's layout or scvi-tools' (``_save_load``, ``_scvi_tools``), and a saved model as one zip file
(``_zip``)."""

from ._autozi import AUTOZI
from ._base import BaseModel
from ._scvi import SCVI
from ._zip import MODELS, load_model_zip, model_zip_bytes

__all__ = ["AUTOZI", "BaseModel", "SCVI", "MODELS", "load_model_zip", "model_zip_bytes"]
