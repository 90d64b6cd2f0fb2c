"""SCVI: the user-facing scVI model (latent space, batch correction, denoised expression)."""

from __future__ import annotations

from ..module import VAE
from .base import BaseModel


class SCVI(BaseModel):
    """scVI (Lopez et al., 2018) on an AnnData registered with ``SCVI.setup_anndata``.

    >>> SCVI.setup_anndata(adata, batch_key="batch")
    >>> model = SCVI(adata, gene_likelihood="zinb")
    >>> model.train(max_epochs=50)
    >>> adata.obsm["X_scVI"] = model.get_latent_representation()
    """

    module_class = VAE
    default_lr = 5e-3  # with early stopping: the best held-out ELBO in a fifth of the epochs (time_to_quality.py)

    def __init__(
        self,
        adata,
        n_hidden: int = 128,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        dispersion: str = "gene",
        gene_likelihood: str = "zinb",
        use_observed_lib_size: bool = True,
    ):
        super().__init__(
            adata,
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            dispersion=dispersion,
            gene_likelihood=gene_likelihood,
            use_observed_lib_size=use_observed_lib_size,
        )
