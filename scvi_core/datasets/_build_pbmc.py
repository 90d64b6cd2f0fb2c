"""Rebuild ``pbmc_3batches_2k.h5ad`` from the full ``pbmc_3batches_10x.h5ad`` (see SOURCE.md next to this file).

Run from the repository root::

    python -m scvi_core.datasets._build_pbmc /path/to/pbmc_3batches_10x.h5ad

It keeps every cell and its ``batch`` and ``chemistry``, and 2,000 genes: scanpy's ``seurat_v3`` highly variable
genes on the raw counts, chosen per batch among the genes detected in at least 3 cells, with the marker panel
:data:`MARKERS` always kept: a marker that is not among them takes the place of the lowest-ranked gene, so there are
still 2,000. The counts are left as they are (int32 CSR) and the file is written gzip-compressed. The script refuses
to write a file in which a cell has no counts. The same source gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from . import PBMC_FILE, PBMC_MARKERS

N_GENES = 2000
MIN_CELLS = 3
"""Genes detected in fewer cells are not candidates (the Load data page's default 'Minimum cells per gene')."""
MARKERS = PBMC_MARKERS
OUTPUT = PBMC_FILE


def select_genes(adata: ad.AnnData, n_genes: int = N_GENES,
                 markers: tuple[str, ...] = MARKERS) -> tuple[list[str], list[str]]:
    """Return the chosen gene names (in the file's gene order) and the markers that had to be added."""
    missing = [m for m in markers if m not in adata.var_names]
    if missing:
        raise SystemExit(f"The marker genes {missing} are not in the source file at all.")
    rare = [m for m in markers if (adata[:, m].X > 0).sum() < MIN_CELLS]
    if rare:
        raise SystemExit(f"The marker genes {rare} are detected in fewer than {MIN_CELLS} cells.")
    detected = np.asarray((adata.X > 0).sum(axis=0)).ravel() >= MIN_CELLS
    adata = adata[:, detected].copy()
    hvg = sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes=n_genes, batch_key="batch", inplace=False)
    # the order in which seurat_v3 ranks genes across batches: in more batches first, then by median rank
    ranked = hvg.sort_values(["highly_variable_nbatches", "highly_variable_rank"], ascending=[False, True],
                             na_position="last")
    chosen = list(ranked.index[ranked["highly_variable"].to_numpy()])
    added = [m for m in markers if m not in chosen]
    if added:
        droppable = [g for g in reversed(chosen) if g not in markers][: len(added)]
        chosen = [g for g in chosen if g not in droppable] + added
    keep = set(chosen)
    return [g for g in adata.var_names if g in keep], added


def build(source: Path, output: Path = OUTPUT) -> ad.AnnData:
    full = ad.read_h5ad(source)
    genes, added = select_genes(full)
    counts = sp.csr_matrix(full[:, genes].X, dtype=np.int32)
    counts.sort_indices()
    empty = int((np.asarray(counts.sum(axis=1)).ravel() == 0).sum())
    if empty:
        raise SystemExit(f"{empty} cells have no counts in the {len(genes)} chosen genes; refusing to write them.")
    obs = pd.DataFrame({"batch": full.obs["batch"].astype("category"),
                        "chemistry": full.obs["chemistry"].astype("category")}, index=full.obs_names.copy())
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
    adata.write_h5ad(output, compression="gzip", compression_opts=9)
    per_cell = np.asarray(counts.sum(axis=1)).ravel()
    print(f"wrote {output}: {adata.n_obs} cells × {adata.n_vars} genes, {output.stat().st_size / 1024**2:.2f} MB; "
          f"markers added to the highly variable genes: {added or 'none'}; counts per cell in the chosen genes: "
          f"min {per_cell.min()}, median {np.median(per_cell):.0f}")
    return adata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="pbmc_3batches_10x.h5ad (2,860 cells × 11,221 genes)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    build(args.source, args.output)


if __name__ == "__main__":
    main(sys.argv[1:])
