"""Small count files in every supported format, written by the tests themselves (no downloads, nothing committed).

Every writer stores the same tiny dataset (:func:`tiny_counts`) so that each reader can be checked against it.
"""

from __future__ import annotations

import gzip
import io as _io
import tempfile
import zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_CELLS, N_GENES = 30, 12


def tiny_counts() -> ad.AnnData:
    """30 cells (10x-style barcodes) × 12 genes of integer counts, with a batch and a cell-type column."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(N_CELLS, N_GENES)).astype(np.int32)
    counts[:, 0] += 1  # no empty cell
    barcodes = ["".join(rng.choice(list("ACGT"), 16)) + "-1" for _ in range(N_CELLS)]
    obs = pd.DataFrame(
        {"batch": pd.Categorical(["a", "b"] * (N_CELLS // 2)), "cell_type": pd.Categorical(["t1", "t2", "t3"] * 10)},
        index=barcodes,
    )
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=[f"Gene{j}" for j in range(N_GENES)]))


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def h5ad_bytes(adata: ad.AnnData) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        adata.write_h5ad(Path(tmp) / "x.h5ad")
        return (Path(tmp) / "x.h5ad").read_bytes()


def tenx_h5_bytes(adata: ad.AnnData, gene_names: list[str] | None = None) -> bytes:
    """The Cell Ranger 3 ``filtered_feature_bc_matrix.h5`` layout (genes × cells CSC, i.e. cells × genes CSR)."""
    csr = sp.csr_matrix(adata.X)
    names = gene_names or list(adata.var_names)
    buffer = _io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("matrix")
        group["data"], group["indices"], group["indptr"] = csr.data, csr.indices, csr.indptr
        group["shape"] = np.array([adata.n_vars, adata.n_obs], dtype=np.int32)
        group["barcodes"] = np.array(adata.obs_names, dtype="S")
        features = group.create_group("features")
        features["id"] = np.array([f"ENSG{j:011d}" for j in range(adata.n_vars)], dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        features["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")
        features["_all_tag_keys"] = np.array([b"genome"])
    return buffer.getvalue()


def mtx_files(adata: ad.AnnData, compressed: bool = True, feature_types: list[str] | None = None) -> dict[str, bytes]:
    """The three files of a 10x matrix folder (Cell Ranger 3 names when compressed, 2 names otherwise)."""
    coo = sp.coo_matrix(adata.X.T)  # MatrixMarket files are genes × cells
    lines = ["%%MatrixMarket matrix coordinate integer general", f"{coo.shape[0]} {coo.shape[1]} {coo.nnz}"]
    lines += [f"{i + 1} {j + 1} {v}" for i, j, v in zip(coo.row, coo.col, coo.data, strict=True)]
    matrix = ("\n".join(lines) + "\n").encode()
    types = feature_types or ["Gene Expression"] * adata.n_vars
    ids = [f"ENSG{j:011d}" for j in range(adata.n_vars)]
    if compressed:
        features = "".join(f"{i}\t{n}\t{t}\n" for i, n, t in zip(ids, adata.var_names, types, strict=True))
        barcodes = "".join(f"{b}\n" for b in adata.obs_names)
        return {"matrix.mtx.gz": gzip_bytes(matrix), "features.tsv.gz": gzip_bytes(features.encode()),
                "barcodes.tsv.gz": gzip_bytes(barcodes.encode())}
    genes = "".join(f"{i}\t{n}\n" for i, n in zip(ids, adata.var_names, strict=True))
    return {"matrix.mtx": matrix, "genes.tsv": genes.encode(), "barcodes.tsv": "".join(f"{b}\n" for b in adata.obs_names).encode()}


def zip_bytes(files: dict[str, bytes], folder: str = "filtered_feature_bc_matrix/") -> bytes:
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(folder + name, content)
    return buffer.getvalue()


def table_bytes(adata: ad.AnnData, sep: str = ",", genes_by_cells: bool = False) -> bytes:
    frame = pd.DataFrame(adata.X.toarray(), index=adata.obs_names, columns=adata.var_names)
    return (frame.T if genes_by_cells else frame).to_csv(sep=sep).encode()


def write_all(folder: Path, adata: ad.AnnData) -> dict[str, Path]:
    """Write one file per single-file format into ``folder``; return them by format name."""
    files = {
        "h5ad": ("tiny.h5ad", h5ad_bytes(adata)),
        "10x_h5": ("tiny_filtered_feature_bc_matrix.h5", tenx_h5_bytes(adata)),
        "zip": ("tiny_mtx.zip", zip_bytes(mtx_files(adata))),
        "csv": ("tiny.csv", table_bytes(adata)),
        "tsv_gz": ("tiny_genes_by_cells.tsv.gz", gzip_bytes(table_bytes(adata, "\t", genes_by_cells=True))),
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, (name, content) in files.items():
        (folder / name).write_bytes(content)
        written[kind] = folder / name
    return written


def write_big_h5ad(path: Path, n_cells: int = 100_000, n_genes: int = 1000) -> None:
    """A sparse 100,000-cell count matrix (about 2% non-zero) with a batch and an identifier column."""
    rng = np.random.default_rng(0)
    counts = sp.random(n_cells, n_genes, density=0.02, format="csr", random_state=rng,
                       data_rvs=lambda k: rng.integers(1, 30, k)).astype(np.int32)
    names = [f"cell{i}" for i in range(n_cells)]
    obs = pd.DataFrame({"batch": pd.Categorical(rng.choice(["a", "b"], n_cells)), "barcode": names}, index=names)
    ad.AnnData(X=counts, obs=obs).write_h5ad(path)
