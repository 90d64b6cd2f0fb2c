"""Hostile and legitimate uploads the way the Load data page reads them, before and after issue 23's reader.

Each file is read both ways, in turn: "in the server" (``io.read_uploaded`` in this process, what the page did
before) and by the "bounded reader" (stored in a new session's folder and read by ``dashboard.reading``: a forked
reader within a memory ceiling and a time limit, whose matrices this process maps). For each the script prints the
median time (and range) and the peak growth of the memory of this process and every process below it (Pss, sampled
every 10 ms in a second read of each: the server's memory with its readers; sampling slows the process it reads, so
the times come from reads without it). Hostile kinds: a 1.7 MB zip of a CSV that expands to 1 GiB, a gzip bomb, a
nested archive, a zip member that lies about its size, matrix headers declaring more genes than a genome or a
trillion counts, an HDF5 file declaring 400 GB, a table header with 300,000 columns. Legitimate ones: a ~400 MB
.h5ad and a zipped, gzipped 10x triplet of 20,000 cells (``--large``: also a 10x .h5 of 50,000 cells and a ~1 GB
.h5ad). With ``--before REV``, each legitimate file is also read the way the page read it at revision REV (default
e131782, the last one before issue 23): that revision's readers, in the server, behind the ``st.cache_resource``
keyed by the upload's bytes that its page called (hashing them is part of what a user waited for; the cache is
cleared first, as for a first upload). Then 5 AppTest sessions in turn upload 2 different files each through the
page, and the server's memory is printed after each session has ended.

    python benchmarks/hostile_inputs.py [--only legit|hostile|sessions] [--repeats N] [--large] [--before REV]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
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


def legit_files(folder: Path, large: bool = False) -> dict[str, Path]:
    """A ~400 MB .h5ad and a zipped 10x triplet of 20,000 cells; with ``large`` also a 10x .h5 of 50,000 cells and a
    ~1 GB .h5ad (150,000 cells), the files issue 23 names."""
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
    files = {f".h5ad, {(folder / 'big.h5ad').stat().st_size / 2**20:,.0f} MB (60,000 × 2,000)": folder / "big.h5ad",
             f"zipped 10x triplet, {(folder / 'tenx.zip').stat().st_size / 2**20:,.0f} MB (20,000 × 2,000)":
                 folder / "tenx.zip"}
    if large:
        cells = simulate(n_cells=50_000, n_genes=2000, seed=2)
        (folder / "cells.h5").write_bytes(datafiles.tenx_h5_bytes(cells, [f"GENE{i}" for i in range(cells.n_vars)]))
        files[f"10x .h5, {(folder / 'cells.h5').stat().st_size / 2**20:,.0f} MB (50,000 × 2,000)"] = folder / "cells.h5"
        huge = simulate(n_cells=150_000, n_genes=2000, seed=3)
        huge.X = sp.csr_matrix(huge.X, dtype=np.float32)
        huge.write_h5ad(folder / "huge.h5ad")
        files[f".h5ad, {(folder / 'huge.h5ad').stat().st_size / 2**20:,.0f} MB (150,000 × 2,000)"] = folder / "huge.h5ad"
    return files


def tree_pss_mb(pid: int | None = None) -> float:
    """Proportional memory (Pss: shared pages split between their processes, so that a forked reader is not counted
    twice) of this process and every process below it: the server with its reader processes."""
    from dashboard.processes import children

    pid = os.getpid() if pid is None else pid
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total = int(line.split()[1]) / 1024
    except OSError:
        return total
    return total + sum(tree_pss_mb(child) for child in children(pid))


class PeakSampler:
    """The tree's Pss sampled every 10 ms while a block runs: its peak above what it was before."""

    def __enter__(self):
        self.before, self.peak, self._done = tree_pss_mb(), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, tree_pss_mb())
            time.sleep(0.01)

    def __exit__(self, *_):
        self._done.set()
        self._thread.join()
        self.grew = max(0.0, self.peak - self.before)


def read_both_ways(path: Path, folder: Path) -> dict[str, tuple[float, float, str]]:
    """The upload path of the page before this change (io.read_uploaded in the server) and now (stored in a session
    folder, read by a bounded reader): seconds, peak growth of the tree's memory, outcome. Each way is read twice:
    timed alone, then with the memory sampled (reading every process's smaps every 10 ms slows the process it
    reads, a reader that is allocating most: the times would be the sampler's)."""
    from dashboard.reading import reading_service
    from dashboard.session_folder import SessionFolder
    from scvi_core import io

    content = path.read_bytes()

    def in_server():
        return io.read_uploaded([(path.name, content)])

    def bounded():
        session = SessionFolder(folder)  # a new session: the upload is written, as a first upload is
        return reading_service().read(session.store_upload([(path.name, content)]), session.ready())

    results = {}
    for way, read in (("in the server", in_server), ("bounded reader", bounded)):
        start = time.perf_counter()
        try:
            adata, _ = read()
            outcome = f"read: {adata.n_obs:,} × {adata.n_vars:,}"
            del adata
        except Exception as err:  # noqa: BLE001 - reported, whatever it is
            outcome = f"refused: {str(err)[:90]}"
        seconds = time.perf_counter() - start
        gc.collect()
        with PeakSampler() as sampler:
            try:
                read()
            except Exception:  # noqa: BLE001 - the outcome is the timed read's
                pass
        gc.collect()
        results[way] = (seconds, sampler.grew, outcome)
    return results


PAGE_BEFORE = """
import json, sys, time
from pathlib import Path
import streamlit as st
from scvi_core import io

@st.cache_resource(max_entries=2)
def read_upload(files, orientation):  # the Load data page's reader at that revision
    return io.read_uploaded(files, orientation)

path, repeats = Path(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(repeats):
    read_upload.clear()  # a first upload of these bytes
    start = time.perf_counter()
    read_upload(((path.name, path.read_bytes()),), "auto")
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def page_before(path: Path, code: Path, repeats: int) -> list[float]:
    """Seconds the Load data page took to read ``path`` with the readers in ``code`` (an old revision's files), in a
    process of its own so that its modules do not meet today's."""
    out = subprocess.run([sys.executable, "-c", PAGE_BEFORE, str(path), str(repeats)], cwd=code, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)}).stdout
    return json.loads(out.strip().splitlines()[-1])


def revision_code(revision: str, folder: Path) -> Path:
    """The project's Python packages as they were at ``revision``, extracted into ``folder``."""
    code = folder / f"at-{revision}"
    code.mkdir()
    archive = subprocess.run(["git", "archive", revision, "scvi_core", "dashboard"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    return code


def timing(seconds: list[float]) -> str:
    seconds = sorted(seconds)
    return f"{seconds[len(seconds) // 2]:.2f} s ({seconds[0]:.2f}–{seconds[-1]:.2f})"


def measure(files: dict[str, Path], folder: Path, repeats: int, before: str | None = None) -> None:
    os.sync()  # the files just made are written out first, not while they are read
    code = revision_code(before, folder) if before else None
    extra = f" the page at {before}: time |" if before else ""
    print(f"| file |{extra} in the server: time, peak memory | bounded reader: time, peak memory | outcome |\n"
          f"|---|{'---|' if before else ''}---|---|---|")
    for name, path in files.items():
        cells = [timing(page_before(path, code, repeats))] if before else []
        runs = [read_both_ways(path, folder) for _ in range(repeats)]
        for way in ("in the server", "bounded reader"):
            grew = max(run[way][1] for run in runs)
            cells.append(f"{timing([run[way][0] for run in runs])}, {grew:,.0f} MB")
        print(f"| {name} | {' | '.join(cells)} | {runs[0]['bounded reader'][2]} |", flush=True)


def sessions_memory(folder: Path, sessions: int = 5, per_session: int = 2) -> None:
    """``sessions`` AppTest sessions in turn each upload ``per_session`` different .h5ad files (10,000 × 1,000)
    through the Load data page, and end; the server's memory (Pss of the tree) after the first upload, after each
    session, and once the allocator has given back what it kept (so that what remains is memory still held)."""
    os.environ.update({"SCVI_DASHBOARD_DEMO": "0", "SCVI_DASHBOARD_DATA_DIR": str(folder),
                       "SCVI_DASHBOARD_RUNS_DIR": str(folder / "runs"), "SCVI_DASHBOARD_SESSIONS_DIR": str(folder / "s")})
    import scipy.sparse as sp
    from streamlit.testing.v1 import AppTest

    from scvi_core import simulate
    from tests import datafiles

    uploads = []
    for seed in range(sessions * per_session):
        adata = simulate(n_cells=10_000, n_genes=1000, seed=seed)
        adata.X = sp.csr_matrix(adata.X)
        uploads.append(datafiles.h5ad_bytes(adata))
    print(f"\n{len(uploads)} different uploads of {len(uploads[0]) / 2**20:,.0f} MB by {sessions} sessions in turn:")
    base = tree_pss_mb()
    for number in range(sessions):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.run()
        at.radio(key="source").set_value("Upload files").run()
        for index in range(per_session):
            content = uploads[number * per_session + index]
            at.file_uploader(key="upload").set_value([(f"u{number}-{index}.h5ad", content, "application/octet-stream")]).run()
            at.button(key="read_upload").click().run()
            assert not at.error, at.error[0].value
            if number == 0 and index == 0:
                first = tree_pss_mb()
                print(f"- after the first upload: {first - base:,.0f} MB above the server's start")
        del at
        gc.collect()
        print(f"- after session {number + 1} ({(number + 1) * per_session} uploads) ended: "
              f"{tree_pss_mb() - base:,.0f} MB above the start", flush=True)
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what is left is glibc's free heap kept for reuse, or objects still held
    print(f"- after malloc_trim (memory freed but kept by the allocator given back): {tree_pss_mb() - base:,.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["legit", "hostile", "sessions"])
    parser.add_argument("--repeats", type=int, default=5,
                        help="reads of each file each way (medians are printed, with the range)")
    parser.add_argument("--large", action="store_true", help="also a 10x .h5 of 50,000 cells and a ~1 GB .h5ad")
    parser.add_argument("--before", nargs="?", const="e131782", metavar="REV",
                        help="also read each legitimate file the way the page did at REV (default e131782)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dashboard.reading import reading_service

    reading_service().start()
    with tempfile.TemporaryDirectory(prefix="hostile_") as tmp:
        folder = Path(tmp)
        if args.only in (None, "hostile"):
            measure(hostile_files(folder), folder, args.repeats)
        if args.only in (None, "legit"):
            measure(legit_files(folder, args.large), folder, args.repeats, args.before)
        if args.only in (None, "sessions"):
            sessions_memory(folder)
