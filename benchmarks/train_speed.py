"""Training throughput and memory of SCVI and AUTOZI.

Prints cells/s (training and validation cells processed per second of wall time, batch size 128, default
architecture) and the peak resident memory of a process that does nothing else, for simulated data of
3000 × 1000 and 20000 × 2000 genes. Each measurement runs in a fresh subprocess so its peak RSS is its own.

    python benchmarks/train_speed.py                 # the two standard sizes
    python benchmarks/train_speed.py --memory        # also 1,000,000 cells × 2,000 genes at 10% non-zero (CSR)

The machine is shared and noisy: compare figures within one run. The first epoch (warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sparse_counts(n_cells: int, n_genes: int, density: float, seed: int = 0, chunk: int = 20_000):
    """A CSR count matrix built chunk by chunk into preallocated arrays (a first pass counts the non-zeros), so
    that neither a dense n_cells × n_genes array nor a second copy of the CSR ever exists."""
    import numpy as np
    import scipy.sparse as sp

    def block(b: int):
        rng = np.random.default_rng([seed, b])
        rows = min(chunk, n_cells - b * chunk)
        return rng, sp.csr_matrix(rng.random((rows, n_genes), dtype=np.float32) < density, dtype=np.int32)

    n_blocks = -(-n_cells // chunk)
    nnz = sum(block(b)[1].nnz for b in range(n_blocks))
    data, indices = np.empty(nnz, np.int32), np.empty(nnz, np.int32)
    indptr = np.zeros(n_cells + 1, np.int64)
    at = 0
    for b in range(n_blocks):
        rng, mask = block(b)
        data[at : at + mask.nnz] = 1 + rng.poisson(1.0, size=mask.nnz)
        indices[at : at + mask.nnz] = mask.indices
        indptr[b * chunk + 1 : b * chunk + 1 + mask.shape[0]] = at + mask.indptr[1:]
        at += mask.nnz
    return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))


def measure(model_name: str, n_cells: int, n_genes: int, epochs: int, memory_case: bool) -> dict:
    """Runs in the subprocess: build data, train ``epochs`` timed epochs after one warm-up epoch."""
    import anndata as ad

    from scvi_core import AUTOZI, SCVI, simulate

    cls = {"SCVI": SCVI, "AUTOZI": AUTOZI}[model_name]
    if memory_case:
        adata = ad.AnnData(sparse_counts(n_cells, n_genes, 0.10))
    else:
        adata = simulate(n_cells=n_cells, n_genes=n_genes, seed=0)
    csr_mb = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    zeros = 1 - adata.X.nnz / (n_cells * n_genes)
    cls.setup_anndata(adata)
    model = cls(adata)
    if not memory_case:
        model.train(max_epochs=1)  # warm-up: allocator, thread pools
    model = cls(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs)
    seconds = time.perf_counter() - start
    return {
        "model": model_name,
        "cells": n_cells,
        "genes": n_genes,
        "zeros": zeros,
        "epochs": epochs,
        "seconds": seconds,
        "cells_per_s": n_cells * epochs / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "csr_mb": csr_mb,
    }


def run_case(model_name: str, n_cells: int, n_genes: int, epochs: int, memory_case: bool = False) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.train_speed import measure; "
        f"print(json.dumps(measure({model_name!r}, {n_cells}, {n_genes}, {epochs}, {memory_case})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="also train one epoch on 1M × 2000 cells (slow)")
    args = parser.parse_args()
    cases = [(3000, 1000, 10), (20000, 2000, 2)]
    print(f"{'model':7} {'cells × genes':>15} {'zeros':>6} {'epochs':>6} {'seconds':>8} {'cells/s':>9} {'peak RSS MB':>11}")
    for n_cells, n_genes, epochs in cases:
        for model_name in ("SCVI", "AUTOZI"):
            r = run_case(model_name, n_cells, n_genes, epochs)
            print(f"{r['model']:7} {r['cells']:>7} × {r['genes']:<5} {r['zeros']:6.1%} {r['epochs']:6d} "
                  f"{r['seconds']:8.1f} {r['cells_per_s']:9,.0f} {r['peak_rss_mb']:11,.0f}")
    if args.memory:
        r = run_case("SCVI", 1_000_000, 2000, 1, memory_case=True)
        budget = 2 * r["csr_mb"] + 1024
        print(f"memory: SCVI, 1,000,000 × 2,000 at 10% non-zero, 1 epoch in {r['seconds']:.0f} s "
              f"({r['cells_per_s']:,.0f} cells/s): peak RSS {r['peak_rss_mb']:,.0f} MB; CSR {r['csr_mb']:,.0f} MB; "
              f"budget 2 × CSR + 1 GB = {budget:,.0f} MB -> {'OK' if r['peak_rss_mb'] < budget else 'OVER'}")


if __name__ == "__main__":
    main()
