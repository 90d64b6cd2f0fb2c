"""Hostile and legitimate input files through ``scvi_core.io``: time to refusal and the reading process's memory.

Each hostile kind (a 1.7 MB zip of a CSV that expands to 1 GiB, a gzip bomb, a nested archive, a zip member that
lies about its size, a matrix header declaring more genes than a genome or a trillion counts, an HDF5 file
declaring 400 GB, a table header with 300,000 columns) is read in a fresh child process; the script prints how long
the refusal took, the child's peak resident memory above its start, and the first words of the message. Then the
legitimate files — a ~500 MB .h5ad and a zipped, gzipped 10x triplet of 20,000 cells — are read the same way.

``--root`` (repeatable) reads with other checkouts' ``scvi_core`` too (e.g. a worktree of an earlier commit: ``git
worktree add /tmp/before <commit>``), each file by each checkout in turn, to compare with what it did before; a kind
it did not refuse is then reported as read.

    python benchmarks/hostile_inputs.py [--root PATH ...] [--only legit|hostile]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def hostile_files(folder: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO))
    from tests import datafiles
    from tests.test_hostile_inputs import gzip_bomb, hdf5_declaring, lying_zip, mtx_triplet, zip_bomb

    files = {}
    files["zip bomb (1 GiB CSV)"] = folder / "bomb.zip"
    files["zip bomb (1 GiB CSV)"].write_bytes(zip_bomb(1 << 30))
    files["gzip bomb (1 GiB CSV)"] = folder / "bomb.csv.gz"
    files["gzip bomb (1 GiB CSV)"].write_bytes(gzip_bomb(1 << 30))
    nested = folder / "nested.zip"
    with zipfile.ZipFile(nested, "w") as archive:
        archive.write(files["zip bomb (1 GiB CSV)"], "inner.zip")
    files["nested archive"] = nested
    files["member lying about its size"] = folder / "liar.zip"
    files["member lying about its size"].write_bytes(lying_zip())
    for name, header in (("250,000 features", b"250000 8 20"), ("a trillion counts", b"20 8 1000000000000")):
        triplet = folder / f"mtx {name}.zip"
        triplet.write_bytes(datafiles.zip_bytes(mtx_triplet(header)))
        files[f"matrix header: {name}"] = triplet
    files["HDF5 declaring 400 GB"] = folder / "huge.h5ad"
    files["HDF5 declaring 400 GB"].write_bytes(hdf5_declaring((1_000_000, 100_000)))
    files["table header with 300,000 columns"] = folder / "wide.csv"
    files["table header with 300,000 columns"].write_bytes(b"cell," + b"g," * 300_000 + b"g\nc1" + b",0" * 300_001)
    return files


def legit_files(folder: Path) -> dict[str, Path]:
    import anndata as ad
    import scipy.sparse as sp

    sys.path.insert(0, str(REPO))
    from scvi_core import simulate
    from tests import datafiles

    big = simulate(n_cells=60_000, n_genes=2000, seed=0)
    big.X = sp.csr_matrix(big.X, dtype=np.float32)
    big.write_h5ad(folder / "big.h5ad")
    tenx = simulate(n_cells=20_000, n_genes=2000, seed=1)
    tenx.var_names = [f"GENE{i}" for i in range(tenx.n_vars)]
    (folder / "tenx.zip").write_bytes(datafiles.zip_bytes(datafiles.mtx_files(ad.AnnData(tenx.X, obs=tenx.obs[[]],
                                                                                          var=tenx.var[[]]))))
    return {f".h5ad, {(folder / 'big.h5ad').stat().st_size / 2**20:,.0f} MB (60,000 × 2,000)": folder / "big.h5ad",
            f"zipped 10x triplet, {(folder / 'tenx.zip').stat().st_size / 2**20:,.0f} MB (20,000 × 2,000)":
                folder / "tenx.zip"}


def resident_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024


def read_in_child(root: str, path: str, queue) -> None:
    """Read ``path`` with ``root``'s scvi_core; report the seconds, the resident memory's peak above what it was
    before the read (sampled every 5 ms: the process's lifetime peak would be its imports'), and the outcome."""
    sys.path.insert(0, root)
    from scvi_core import io

    before, peak, done = resident_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        adata, _ = io.read_path(path)
        outcome = f"read: {adata.n_obs:,} × {adata.n_vars:,}"
    except Exception as err:  # noqa: BLE001 - reported, whatever it is
        outcome = f"refused: {str(err)[:90]}"
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    queue.put((seconds, max(0.0, peak[0] - before), outcome))


def measure(roots: list[str], files: dict[str, Path], timeout: float = 300.0) -> None:
    context = mp.get_context("spawn")
    for name, path in files.items():
        for root in roots:
            queue = context.Queue()
            child = context.Process(target=read_in_child, args=(root, str(path), queue))
            child.start()
            child.join(timeout)
            label = name if len(roots) == 1 else f"{name}, {root}"
            if child.is_alive():
                child.kill()
                print(f"| {label} | > {timeout:.0f} s | – | still reading, killed |", flush=True)
                continue
            seconds, grew, outcome = queue.get() if not queue.empty() else (float("nan"), float("nan"), "crashed")
            print(f"| {label} | {seconds:.2f} s | {grew:,.0f} MB | {outcome} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", default=[], help="another checkout whose scvi_core reads them")
    parser.add_argument("--only", choices=["legit", "hostile"])
    args = parser.parse_args()
    roots = [str(REPO), *args.root]
    with tempfile.TemporaryDirectory(prefix="hostile_") as tmp:
        folder = Path(tmp)
        print(f"Reading with {', '.join(roots)}\n\n| file | time | peak memory growth | outcome |\n|---|---|---|---|")
        if args.only != "legit":
            measure(roots, hostile_files(folder))
        if args.only != "hostile":
            measure(roots, legit_files(folder))
