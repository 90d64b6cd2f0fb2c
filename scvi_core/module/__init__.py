"""The models' mathematics: scVI's VAE and its AutoZI extension (one file each)."""

from .autozivae import AutoZIVAE
from .vae import VAE, LossTerms

__all__ = ["VAE", "AutoZIVAE", "LossTerms"]
