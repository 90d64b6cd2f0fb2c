"""The models' mathematics: scVI's VAE and its AutoZI extension (one file each)."""

from ._autozivae import AutoZIVAE
from ._vae import VAE, LossTerms

__all__ = ["AutoZIVAE", "LossTerms", "VAE"]
