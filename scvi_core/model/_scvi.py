"""SCVI: the user-facing scVI model (latent space, batch correction, denoised expression)."""

from __future__ import annotations

from ..module import VAE
from ._base import BaseModel


class SCVI(BaseModel):
    """scVI (Lopez et al., 2018) on an AnnData registered with ``SCVI.setup_anndata``.

    Arguments (keyword, defaults from :class:`~scvi_core.module.VAE`, whose signature defines them): ``n_hidden=128``,
    ``n_latent=10``, ``n_layers=1``, ``dropout_rate=0.1``, ``dispersion="gene"``, ``gene_likelihood="zinb"``,
    ``use_observed_lib_size=True``.

    >>> SCVI.setup_anndata(adata, batch_key="batch")
    >>> model = SCVI(adata, gene_likelihood="zinb")
    >>> model.train(max_epochs=50)
    >>> adata.obsm["X_scVI"] = model.get_latent_representation()
    """

    module_class = VAE
    default_lr = 5e-3  # with early stopping: the best held-out ELBO in a fifth of the epochs (time_to_quality.py)
