"""Real single-cell data shipped inside the package, readable offline.

:func:`pbmc_3batches` returns 2,860 human blood cells (PBMC) from three public 10x Genomics datasets with 2,000 genes
of raw counts. Where the file comes from, how it was cut and its licence notes are in ``SOURCE.md`` next to this
file; ``_build_pbmc.py`` rebuilds it. :func:`load_pbmc3k` is the one public dataset fetched instead (scanpy's
downloader), with a message in words when the machine is offline.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad

from ..io import DataLoadError, describe_error

PBMC_FILE = Path(__file__).with_name("pbmc_3batches_2k.h5ad")
PBMC_MARKERS = ("IL7R", "CD3E", "CD3D", "MS4A1", "CD79A", "LYZ", "CD14", "S100A8", "S100A9", "NKG7", "GNLY", "FCGR3A",
                "CST3")
"""Textbook blood-cell markers (T cells: IL7R, CD3E, CD3D; B cells: MS4A1, CD79A; monocytes: LYZ, CD14, S100A8,
S100A9, FCGR3A; NK cells: NKG7, GNLY; dendritic cells and monocytes: CST3) that the shipped genes always include."""

__all__ = ["pbmc_3batches", "load_pbmc3k", "PBMC_FILE", "PBMC_MARKERS"]


def pbmc_3batches() -> ad.AnnData:
    """Real PBMC counts: 2,860 cells × 2,000 genes from three 10x Genomics datasets, one batch each.

    The batches (``obs["batch"]``) are ``pbmc1k_3p_v2`` (954 cells), ``pbmc1k_3p_v3`` (906) and ``pbmc8k_5p_sub1k``
    (1,000 of 7,227 cells): different donors and chemistries (``obs["chemistry"]``: 10x 3' v2, 3' v3, 5' v1), so
    batch and biology are partly confounded. ``X`` holds raw integer UMI counts (int32 CSR) of 2,000 highly variable
    genes (scanpy ``seurat_v3``, per batch), which include the markers in :data:`PBMC_MARKERS`. Cell names are
    ``<batch>:<10x barcode>``. There are no cell-type labels: this is real data without ground truth.

    Read from the file inside the package (no network); every call returns a new, independent AnnData.
    """
    return ad.read_h5ad(PBMC_FILE)


def load_pbmc3k(download_dir: str | Path) -> ad.AnnData:
    """The 10x PBMC 3k raw counts through scanpy's download helper; a clear :class:`DataLoadError` when offline."""
    import scanpy as sc  # noqa: PLC0415 (seconds to import; only this download needs it)

    saved = sc.settings.datasetdir
    sc.settings.datasetdir = Path(download_dir)
    try:
        return sc.datasets.pbmc3k()
    except Exception as err:  # urllib, SSL, HTTP or a broken partial download: all mean "could not get it"
        raise DataLoadError(
            f"Could not download PBMC 3k from 10x Genomics ({describe_error(err)}). This machine seems to be offline. "
            "Use the built-in demo data, or copy the file into the data directory and open it from there."
        ) from err
    finally:
        sc.settings.datasetdir = saved

