"""Training throughput and memory of SCVI and AUTOZI.

Prints cells/s (training and validation cells processed per second of wall time, batch size 128, default
architecture) and the peak resident memory of a process that does nothing else, for simulated data of
3000 × 1000 and 20000 × 2000 genes. Each measurement runs in a fresh subprocess so its peak RSS is its own.

    python benchmarks/train_speed.py                 # the two standard sizes
    python benchmarks/train_speed.py --memory        # also 1,000,000 cells × 2,000 genes at 10% non-zero (CSR)
    python benchmarks/train_speed.py --disk          # 5,000,000 × 2,000 at 10% non-zero trained from an .h5ad
    python benchmarks/train_speed.py --disk --cells 200000 --dir /big/disk   # smaller, the file elsewhere
    python benchmarks/train_speed.py --devices 2     # one process against 2 data-parallel CPU processes
    python benchmarks/train_speed.py --threads 1,2,4,8   # SCVI with each number of torch threads (up to the cores)

``--disk`` writes the synthetic CSR to an .h5ad block by block with anndata's on-disk writers (about 8 GB at 5M
cells; removed afterwards), opens it backed, and trains SCVI one epoch from disk; for the in-memory reference it
trains one epoch on the file's first ``--reference-cells`` cells read into memory (per-cell speed does not depend
on the number of cells; 5M cells would not fit in memory). Goals: peak RSS under 2 GB, ≥ 70% of the in-memory
throughput.

The machine is shared and noisy: compare figures within one run. The first epoch (warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_blocks(n_cells: int, n_genes: int, density: float, seed: int = 0, chunk: int = 20_000):
    """The synthetic counts as CSR blocks of ``chunk`` cells (each block drawn from its own seed: the same blocks
    every time), so that no dense n_cells × n_genes array ever exists."""
    import numpy as np
    import scipy.sparse as sp

    for b in range(-(-n_cells // chunk)):
        rng = np.random.default_rng([seed, b])
        rows = min(chunk, n_cells - b * chunk)
        block = sp.csr_matrix(rng.random((rows, n_genes), dtype=np.float32) < density, dtype=np.int32)
        block.data = (1 + rng.poisson(1.0, size=block.nnz)).astype(np.int32)
        yield block


def sparse_counts(n_cells: int, n_genes: int, density: float, seed: int = 0):
    """A CSR count matrix built block by block into preallocated arrays (a first pass counts the non-zeros), so
    that neither a dense n_cells × n_genes array nor a second copy of the CSR ever exists."""
    import numpy as np
    import scipy.sparse as sp

    nnz = sum(block.nnz for block in count_blocks(n_cells, n_genes, density, seed))
    data, indices = np.empty(nnz, np.int32), np.empty(nnz, np.int32)
    indptr = np.zeros(n_cells + 1, np.int64)
    at = row = 0
    for block in count_blocks(n_cells, n_genes, density, seed):
        data[at : at + block.nnz] = block.data
        indices[at : at + block.nnz] = block.indices
        indptr[row + 1 : row + 1 + block.shape[0]] = at + block.indptr[1:]
        at, row = at + block.nnz, row + block.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))


def write_counts_h5ad(path: Path, n_cells: int, n_genes: int, density: float, seed: int = 0) -> float:
    """Write the synthetic counts to an .h5ad block by block (anndata's write_elem, then sparse_dataset.append):
    never more than one block in memory. Returns the file's size in MB."""
    import anndata as ad
    import h5py
    import pandas as pd
    from anndata.io import sparse_dataset, write_elem

    obs = pd.DataFrame(index=pd.RangeIndex(n_cells).astype(str))
    ad.AnnData(obs=obs, var=pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)])).write_h5ad(path)
    with h5py.File(path, "a") as file:
        for i, block in enumerate(count_blocks(n_cells, n_genes, density, seed)):
            if i == 0:
                write_elem(file, "X", block)
            else:
                sparse_dataset(file["X"]).append(block)
    return path.stat().st_size / 2**20


def measure(model_name: str, n_cells: int, n_genes: int, epochs: int, memory_case: bool, devices: int = 1,
            threads: int | None = None) -> dict:
    """Runs in the subprocess: build data, train ``epochs`` timed epochs after one warm-up epoch (with ``threads``
    torch threads; default torch's own choice)."""
    import anndata as ad
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

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
    device = "cpu" if devices > 1 else "auto"  # data-parallel processes on this machine's CPUs
    if not memory_case:
        model.train(max_epochs=1, devices=devices, device=device)  # warm-up: allocator, thread pools
    model = cls(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs, devices=devices, device=device)
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


def measure_file(path: str, reference_cells: int | None) -> dict:
    """Runs in the subprocess: one SCVI epoch from the .h5ad opened backed or, with ``reference_cells``, on that many
    of its first cells read into memory."""
    import anndata as ad

    from scvi_core import SCVI
    from scvi_core.data import get_counts

    adata = ad.read_h5ad(path, backed="r")
    if reference_cells is not None:
        adata = ad.AnnData(get_counts(adata)[0:reference_cells], obs=adata.obs.iloc[:reference_cells], var=adata.var)
    start = time.perf_counter()
    SCVI.setup_anndata(adata)
    model = SCVI(adata)
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.train(max_epochs=1, early_stopping=False)
    seconds = time.perf_counter() - start
    return {"cells": adata.n_obs, "on_disk": model.data.on_disk, "setup_seconds": setup_seconds, "seconds": seconds,
            "cells_per_s": adata.n_obs / seconds, "peak_rss_mb": peak_rss_mb()}


def run_case(model_name: str, n_cells: int, n_genes: int, epochs: int, memory_case: bool = False,
             devices: int = 1, threads: int | None = None) -> dict:
    return _in_subprocess(f"measure({model_name!r}, {n_cells}, {n_genes}, {epochs}, {memory_case}, {devices}, "
                          f"{threads})")


def _in_subprocess(call: str) -> dict:
    """``call`` (a function of this module) in a fresh Python, so that its peak RSS is its own."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.train_speed import *; "
            f"print(json.dumps({call}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_case(n_cells: int, reference_cells: int, folder: str | None) -> None:
    """Write the file, train from disk and from memory, print both and the goals."""
    with tempfile.TemporaryDirectory(dir=folder, prefix="scvi_disk_") as tmp:
        path = Path(tmp) / "counts.h5ad"
        start = time.perf_counter()
        size_mb = write_counts_h5ad(path, n_cells, 2000, 0.10)
        print(f"disk: wrote {n_cells:,} × 2,000 at 10% non-zero to {path} ({size_mb:,.0f} MB) in "
              f"{time.perf_counter() - start:.0f} s")
        disk = _in_subprocess(f"measure_file({str(path)!r}, None)")
        memory = _in_subprocess(f"measure_file({str(path)!r}, {min(reference_cells, n_cells)})")
    ratio = disk["cells_per_s"] / memory["cells_per_s"]
    for name, r in (("from disk", disk), ("in memory", memory)):
        print(f"  SCVI {name:9} {r['cells']:>10,} cells: setup {r['setup_seconds']:6.1f} s, 1 epoch {r['seconds']:7.1f} s"
              f" ({r['cells_per_s']:7,.0f} cells/s), peak RSS {r['peak_rss_mb']:7,.0f} MB")
    print(f"  from disk / in memory: {ratio:.0%} (goal ≥ 70%) -> {'OK' if ratio >= 0.7 else 'UNDER'}; peak RSS from "
          f"disk {disk['peak_rss_mb']:,.0f} MB (goal < 2,048) -> {'OK' if disk['peak_rss_mb'] < 2048 else 'OVER'}")


def devices_case(devices: int) -> None:
    """SCVI on 20,000 × 2,000 cells, 3 epochs (after a warm-up one), on 1 and on ``devices`` CPU processes; the
    processes start once per ``train`` (a few seconds), which the time includes, as a user meets it."""
    one = run_case("SCVI", 20000, 2000, 3)
    many = run_case("SCVI", 20000, 2000, 3, devices=devices)
    print(f"SCVI 20,000 × 2,000, 3 epochs: 1 process {one['seconds']:.1f} s ({one['cells_per_s']:,.0f} cells/s); "
          f"{devices} data-parallel processes {many['seconds']:.1f} s ({many['cells_per_s']:,.0f} cells/s): "
          f"{one['seconds'] / many['seconds']:.2f}× the speed")


def threads_case(counts: list[int]) -> None:
    """SCVI on the quick demo's size and on 20,000 × 2,000 cells with each number of threads (those above this
    machine's cores are skipped: they would only measure oversubscription), and the speed-up over one thread: what
    the dashboard's rule for CPU training slots (``dashboard.settings.THREADS_PER_SLOT``) rests on."""
    cores = len(os.sched_getaffinity(0))
    skipped = [n for n in counts if n > cores]
    if skipped:
        print(f"this machine has {cores} cores: skipping {skipped} threads")
    for n_cells, n_genes, epochs in ((2000, 500, 10), (20000, 2000, 2)):
        base = None
        for threads in [n for n in counts if n <= cores]:
            r = run_case("SCVI", n_cells, n_genes, epochs, threads=threads)
            base = base or r["cells_per_s"]
            print(f"SCVI {n_cells:>6,} × {n_genes:<5,} {threads:2d} thread{'s' if threads > 1 else ' '}: "
                  f"{r['cells_per_s']:9,.0f} cells/s, {r['cells_per_s'] / base:.2f}× one thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="also train one epoch on 1M × 2000 cells (slow)")
    parser.add_argument("--disk", action="store_true", help="only train one epoch from an .h5ad on disk (slow)")
    parser.add_argument("--cells", type=int, default=5_000_000, help="cells of the --disk file (default 5,000,000)")
    parser.add_argument("--reference-cells", type=int, default=200_000,
                        help="cells of --disk's in-memory reference (default 200,000)")
    parser.add_argument("--dir", default=None, help="folder for --disk's temporary file (default: the system's)")
    parser.add_argument("--devices", type=int, default=1,
                        help="only compare one process with this many data-parallel CPU processes (gloo)")
    parser.add_argument("--threads", default=None,
                        help="only compare SCVI with these numbers of torch threads, e.g. 1,2,4,8")
    args = parser.parse_args()
    if args.threads:
        threads_case([int(n) for n in args.threads.split(",")])
        return
    if args.disk:
        disk_case(args.cells, args.reference_cells, args.dir)
        return
    if args.devices > 1:
        devices_case(args.devices)
        return
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
