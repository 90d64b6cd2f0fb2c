"""User-facing models (the scvi-tools API): SCVI and AUTOZI."""

from .autozi import AUTOZI
from .scvi import SCVI

__all__ = ["SCVI", "AUTOZI"]
