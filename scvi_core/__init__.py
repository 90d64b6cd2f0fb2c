"""scvi_core: scVI and AutoZI in plain PyTorch, usable from a notebook without the dashboard."""

from .simulate import simulate

__all__ = ["simulate"]
