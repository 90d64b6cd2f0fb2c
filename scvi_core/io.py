"""Reading single-cell count data from the files biologists actually have, with messages they can act on.

Why a module: the Load data page, notebooks and tests all need the same readers and the same refusals. Every reader
returns ``(adata, notices)``: the AnnData as read and a list of plain-language notes about what was changed on the
way (duplicate names made unique, features dropped, a guessed table orientation). Anything that goes wrong is raised
as :class:`DataLoadError` whose message says what was found and what to do, never a bare library traceback.

Every reader stays within :mod:`scvi_core.limits`: compressed streams and archives are refused as soon as they would
expand past a budget or a ratio no count matrix has, and what a header declares is checked before it is parsed.

Formats: AnnData ``.h5ad``; 10x Genomics ``.h5``; the 10x matrix triplet (``matrix.mtx``, ``features.tsv`` or
``genes.tsv``, ``barcodes.tsv``, each optionally ``.gz``, possibly with a sample prefix) given as files or one
``.zip``; dense ``.csv`` / ``.tsv`` / ``.txt`` tables (optionally ``.gz``). Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from . import limits
from .datasets import pbmc_3batches
from .simulate import simulate

CELLS_BY_GENES = "cells × genes"
GENES_BY_CELLS = "genes × cells"
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
MTX_PARTS = {"matrix": ("matrix.mtx",), "features": ("features.tsv", "genes.tsv"), "barcodes": ("barcodes.tsv",)}
# Extensions the upload widget accepts (it matches the last suffix only, so ".gz" covers every gzipped file).
UPLOAD_EXTENSIONS = ["h5ad", "h5", "zip", "mtx", "gz", "csv", "tsv", "txt"]
SERVER_FILE_SUFFIXES = (".h5ad", ".h5", ".zip", *TABLE_SUFFIXES, *(s + ".gz" for s in TABLE_SUFFIXES))
ON_DISK_KEY = "on_disk_source"
"""``uns`` key of an AnnData opened by :func:`open_on_disk`: {"path": the .h5ad, "layer": where its X came from}."""
DEMO_DATASETS = {
    "quick": {"n_cells": 2000, "n_genes": 500, "seed": 0},
    "large": {"n_cells": 20000, "n_genes": 1000, "seed": 1},
}
"""Simulation settings of the simulated demos."""
REAL_DEMOS = {"pbmc": pbmc_3batches}
"""Real demo datasets shipped inside the package (see :mod:`scvi_core.datasets`): readers, no download."""
_SIMULATED = "Simulated counts with known answers: 4 cell types, 2 batches, 30% zero-inflated genes."
DEMO_CHOICES = {
    "quick": {"label": "quick: 2,000 cells × 500 genes (simulated)", "name": "Demo (quick)", "caption": _SIMULATED},
    "large": {"label": "large: 20,000 cells × 1,000 genes (simulated, ≈5 s)", "name": "Demo (large)",
              "caption": _SIMULATED},
    "pbmc": {"label": "PBMC, 3 batches — real 10x blood cells: 2,860 cells × 2,000 genes",
             "name": "PBMC 3 batches (real)",
             "caption": "Real data: human blood cells (PBMC) from three public 10x Genomics datasets, one batch each "
                        "(different donors and chemistries), raw counts of 2,000 highly variable genes. No ground "
                        "truth: there are no cell-type labels, but its clusters show textbook blood-cell markers "
                        "(CD3E, MS4A1, LYZ, NKG7, …). Shipped with the app, no download."},
}
"""What the Load data page offers under "Demo data": the choice's label, the name shown once it is loaded, and a
caption saying what it is. Keys are those of :data:`DEMO_DATASETS` and :data:`REAL_DEMOS`."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_BARCODE = re.compile(r"^([A-Za-z0-9]+[_:.-])?[ACGTN]{8,}([-_.][A-Za-z0-9]+)?$")
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}")
_CELL_WORDS = re.compile(r"^(cell|barcode|sample|well)", re.IGNORECASE)
_GENE_WORDS = re.compile(r"^(gene|ercc-)", re.IGNORECASE)


class DataLoadError(ValueError):
    """A file could not be read as count data. The message names the file, what was wrong, and what to do."""


def _refusals_as_load_errors(reader):
    """A reader whose :class:`~scvi_core.limits.ExpansionRefused` (a file past this server's limits) reaches its
    caller as the :class:`DataLoadError` every reader raises."""
    @functools.wraps(reader)
    def read(*args, **kwargs):
        try:
            return reader(*args, **kwargs)
        except limits.ExpansionRefused as err:
            raise DataLoadError(str(err)) from err
    return read


def demo_dataset(size: str) -> ad.AnnData:
    """A demo dataset, no download needed. ``size`` is a key of :data:`DEMO_CHOICES`: "quick" and "large" are
    simulated counts with ground truth (cell types, two batches, known zero-inflated genes; ≈ 2,000 cells in a
    fraction of a second, ≈ 20,000 cells in about five seconds), "pbmc" is real PBMC counts in three batches read
    from the package (:func:`scvi_core.datasets.pbmc_3batches`)."""
    if size in REAL_DEMOS:
        return REAL_DEMOS[size]()
    return simulate(**DEMO_DATASETS[size])


def file_kind(name: str) -> str | None:
    """Classify a file name: "h5ad", "10x_h5", "zip", "mtx:<part>", "table", or None when unsupported."""
    lower = name.lower()
    stem = lower[:-3] if lower.endswith(".gz") else lower
    for part, endings in MTX_PARTS.items():
        if stem.endswith(endings):
            return f"mtx:{part}"
    if lower.endswith(".h5ad"):
        return "h5ad"
    if lower.endswith(".h5"):
        return "10x_h5"
    if lower.endswith(".zip"):
        return "zip"
    if stem.endswith(TABLE_SUFFIXES):
        return "table"
    return None


@_refusals_as_load_errors
def read_path(path: str | Path, orientation: str = "auto") -> tuple[ad.AnnData, list[str]]:
    """Read one file of any supported single-file format. ``orientation`` only matters for tables:
    "auto" (guess), :data:`CELLS_BY_GENES` or :data:`GENES_BY_CELLS`."""
    path = Path(path)
    kind = file_kind(path.name)
    if kind is None or kind.startswith("mtx:"):
        raise DataLoadError(_unsupported_message(path.name, kind))
    if path.stat().st_size == 0:
        raise DataLoadError(f"'{path.name}' is empty (0 bytes): the upload or copy did not finish. Provide it again.")
    if kind == "h5ad":
        adata, notices = _read_h5ad(path), []
    elif kind == "10x_h5":
        adata, notices = _read_10x_h5(path), []
    elif kind == "zip":
        return _read_zip(path, orientation)
    else:
        adata, notices = read_table(path, orientation)
    return adata, notices + make_names_unique(adata)


@_refusals_as_load_errors
def read_uploaded(files: Sequence[tuple[str, bytes]], orientation: str = "auto") -> tuple[ad.AnnData, list[str]]:
    """Read uploaded ``(file name, content)`` pairs: one file of any supported format, or the three files of a 10x
    matrix triplet together. The bytes are written to a temporary folder first, which is removed afterwards."""
    if not files:
        raise DataLoadError("No file was uploaded.")
    with tempfile.TemporaryDirectory(prefix="scvi_upload_") as tmp:
        paths = []
        for name, content in files:
            path = Path(tmp) / Path(name).name  # keep only the base name: no folder in a name can escape tmp
            path.write_bytes(content)
            paths.append(path)
        return read_files(paths, orientation)


def read_files(paths: Sequence[Path], orientation: str = "auto") -> tuple[ad.AnnData, list[str]]:
    """Read what a user gave together: one file of any supported format, or the three files of a 10x matrix."""
    if not paths:
        raise DataLoadError("No file was given.")
    if len(paths) == 1 and not (file_kind(paths[0].name) or "").startswith("mtx:"):
        return read_path(paths[0], orientation)
    return read_mtx_files(paths)


@_refusals_as_load_errors
def read_mtx_files(paths: Sequence[Path]) -> tuple[ad.AnnData, list[str]]:
    """Read a 10x matrix triplet given as separate files (names may carry a sample prefix and ``.gz``)."""
    parts: dict[str, Path] = {}
    for path in paths:
        kind = file_kind(path.name) or ""
        if not kind.startswith("mtx:"):
            raise DataLoadError(
                f"'{path.name}' is not part of a 10x matrix folder. Upload either one file (.h5ad, .h5, .zip, .csv, "
                ".tsv) or exactly the three files matrix.mtx(.gz), features.tsv(.gz) (or genes.tsv) and "
                "barcodes.tsv(.gz)."
            )
        part = kind.split(":")[1]
        if part in parts:
            raise DataLoadError(f"Two files for the {part} part: '{parts[part].name}' and '{path.name}'. Upload one.")
        parts[part] = path
    missing = [MTX_PARTS[p][0] + "(.gz)" for p in MTX_PARTS if p not in parts]
    if missing:
        raise DataLoadError(
            f"A 10x matrix needs three files; missing: {', '.join(missing)}. Select all three files together, "
            "or upload them as one .zip."
        )
    for path in parts.values():
        if path.stat().st_size == 0:
            raise DataLoadError(f"'{path.name}' is empty (0 bytes): the upload or copy did not finish.")
    adata, notices = _read_mtx_triplet(parts)
    return adata, notices + make_names_unique(adata)


@_refusals_as_load_errors
def read_table(path: Path, orientation: str = "auto") -> tuple[ad.AnnData, list[str]]:
    """Read a dense count table (first column: names; header row: names) into a sparse AnnData."""
    try:
        with _open_text(path) as handle:
            first_line = handle.readline()
        sep = "\t" if first_line.count("\t") >= first_line.count(",") else ","
        compressed = path.name.lower().endswith(".gz")
        limits.check_table_header(first_line, sep, path.name, 0 if compressed else path.stat().st_size)
        with _open_text(path) as handle:  # a .gz is refused while it decompresses, past the table's budget
            table = pd.read_csv(handle, sep=sep, index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as err:
        raise DataLoadError(
            f"Could not read '{path.name}' as a table ({describe_error(err)}). Expected a text table with gene or cell "
            "names in the first column and a header row, separated by commas (.csv) or tabs (.tsv)."
        ) from err
    except pd.errors.EmptyDataError as err:
        raise DataLoadError(f"'{path.name}' holds no table (no rows or no header).") from err
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise DataLoadError(
            f"'{path.name}' has {table.shape[0]} data rows and {table.shape[1]} value columns; a count table needs "
            "names in the first column, a header row, and at least one column of counts."
        )
    _refuse_text_values(table, path.name)
    notices = []
    if orientation == "auto":
        orientation, reason = guess_orientation(table.index, table.columns)
        notices.append(f"Read the table as {orientation} ({reason}). If that is wrong, change the orientation.")
    values = sp.csr_matrix(table.to_numpy())
    if orientation == CELLS_BY_GENES:
        adata = ad.AnnData(X=values, obs=pd.DataFrame(index=_names(table.index)), var=pd.DataFrame(index=_names(table.columns)))
    else:
        adata = ad.AnnData(X=values.T.tocsr(), obs=pd.DataFrame(index=_names(table.columns)), var=pd.DataFrame(index=_names(table.index)))
    return adata, notices


def guess_orientation(row_names: Sequence, col_names: Sequence) -> tuple[str, str]:
    """Guess whether a table's rows are cells or genes, and say why. Names decide when they are telling (cell
    barcodes, Ensembl gene ids, "cell…"/"gene…" prefixes); otherwise the longer axis is taken as genes, as a
    typical dense table holds fewer cells than genes."""
    for names, axis in ((row_names, "row"), (col_names, "column")):
        rows_are_cells = axis == "row"
        if _share(names, _BARCODE) or _share(names, _CELL_WORDS):
            return (CELLS_BY_GENES if rows_are_cells else GENES_BY_CELLS), f"the {axis} names look like cells"
        if _share(names, _ENSEMBL) or _share(names, _GENE_WORDS):
            return (GENES_BY_CELLS if rows_are_cells else CELLS_BY_GENES), f"the {axis} names look like genes"
    if len(row_names) > len(col_names):
        return GENES_BY_CELLS, "there are more rows than columns, and genes usually outnumber cells"
    return CELLS_BY_GENES, "there are more columns than rows, and genes usually outnumber cells"


def make_names_unique(adata: ad.AnnData) -> list[str]:
    """Make duplicated gene and cell names unique in place (appending -1, -2, …) and say so."""
    notices = []
    for axis, names, fix in (("gene", adata.var_names, adata.var_names_make_unique),
                             ("cell", adata.obs_names, adata.obs_names_make_unique)):
        duplicated = names[names.duplicated()]
        if len(duplicated):
            examples = ", ".join(repr(str(n)) for n in duplicated.unique()[:3])
            fix()
            notices.append(
                f"{len(duplicated)} duplicate {axis} names (e.g. {examples}) were made unique by appending -1, -2, …"
            )
    return notices


def list_data_files(data_dir: str | Path) -> list[str]:
    """Files in the data directory (and its sub-folders) that can be opened, as paths relative to it. Links that
    lead outside the directory are left out, as :func:`resolve_data_path` would refuse them."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.name.lower().endswith(SERVER_FILE_SUFFIXES):
            continue
        if path.is_file() and path.resolve().is_relative_to(root):
            found.append(relative.as_posix())
    return found


def resolve_data_path(name: str, data_dir: str | Path) -> Path:
    """Return the absolute path of ``name`` inside ``data_dir``, refusing anything that leads outside it
    (absolute paths, ``..``, links) so that the dashboard cannot be used to read arbitrary server files."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise DataLoadError(
            f"The data directory {root} does not exist. Create it and put .h5ad or .h5 files there, or point the "
            "environment variable SCVI_DASHBOARD_DATA_DIR to another folder."
        )
    if not name or not name.strip():
        raise DataLoadError("No file name was given. Pick a file from the data directory.")
    candidate = (root / name.strip()).resolve()
    if not candidate.is_relative_to(root):
        raise DataLoadError(
            f"'{name}' is outside the data directory {root}; only files inside it can be opened. Copy the file "
            "into the data directory first."
        )
    if not candidate.is_file():
        raise DataLoadError(f"There is no file '{name}' in the data directory {root}.")
    return candidate


def check_upload_size(n_bytes: int, limit_mb: int) -> None:
    """Refuse an upload above the server's limit, pointing to the data directory for big files."""
    if n_bytes > limit_mb * 1024 * 1024:
        raise DataLoadError(
            f"The upload is {n_bytes / 1024**2:,.0f} MB, over the limit of {limit_mb:,} MB. Put big files in the "
            "server's data directory instead and open them from 'Data directory'."
        )


def open_on_disk(path: str | Path, layer: str | None = None) -> tuple[ad.AnnData, list[str]]:
    """Open an .h5ad too large to load: obs and var are read, X and the layers stay on disk (read chunk by chunk
    when used, see :mod:`scvi_core.ondisk`); .raw, obsm, obsp and uns are left out. With ``layer``, that layer is the
    returned AnnData's X. ``uns[ON_DISK_KEY]`` records the file and layer, so that a training process opens the same
    counts again (:func:`reopen_on_disk`)."""
    import h5py  # noqa: PLC0415
    from anndata.io import read_elem, sparse_dataset  # noqa: PLC0415

    path = Path(path)
    _require_hdf5(path, "an AnnData .h5ad file")
    try:
        file = h5py.File(path, "r")
        matrices = {name: file[name] for name in ("X", *(f"layers/{k}" for k in file.get("layers", {})))}
        matrices = {name: stored if isinstance(stored, h5py.Dataset) else sparse_dataset(stored)
                    for name, stored in matrices.items()}
        key = "X" if layer is None else f"layers/{layer}"
        if key not in matrices:
            raise DataLoadError(f"'{path.name}' has no {'X' if layer is None else f'layer {layer!r}'} of counts.")
        adata = ad.AnnData(X=matrices.pop(key), obs=read_elem(file["obs"]), var=read_elem(file["var"]),
                           layers={k.removeprefix("layers/"): v for k, v in matrices.items() if k != "X"})
    except DataLoadError:
        raise
    except Exception as err:  # h5py/anndata raise many types for damaged files
        raise DataLoadError(
            f"Could not open '{path.name}' as an .h5ad file: it looks truncated or corrupt ({describe_error(err)}). "
            "Export it again, or copy it again in full."
        ) from err
    adata.uns[ON_DISK_KEY] = {"path": str(path.resolve()), **({"layer": layer} if layer else {})}
    left_out = [name for name in ("raw", "obsm", "obsp", "varm", "uns") if len(file.get(name, {}))]
    notices = [f"Opened on disk ({path.stat().st_size / 2**30:,.1f} GB): the counts are read chunk by chunk, never "
               "whole, so this file needs no more memory than a small one."
               + (f" Not opened: {', '.join(left_out)}." if left_out else "")]
    return adata, notices + make_names_unique(adata)


def reopen_on_disk(source: dict) -> ad.AnnData:
    """The AnnData that :func:`open_on_disk` gave for ``source`` (its ``uns[ON_DISK_KEY]``)."""
    return open_on_disk(source["path"], source.get("layer"))[0]


def is_opened_on_disk(adata: ad.AnnData) -> bool:
    return ON_DISK_KEY in adata.uns


def working_copy(adata: ad.AnnData) -> ad.AnnData:
    """A copy to modify (register, annotate). Counts opened on disk are not copied but shared, read-only, by both:
    anndata cannot copy them into memory, and nothing writes to them."""
    if not is_opened_on_disk(adata):
        return adata.copy()
    return ad.AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy(), uns=copy.deepcopy(dict(adata.uns)),
                      layers=dict(adata.layers))


def load_pbmc3k(download_dir: str | Path) -> ad.AnnData:
    """The 10x PBMC 3k raw counts through scanpy's download helper; a clear :class:`DataLoadError` when offline."""
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


def _read_h5ad(path: Path) -> ad.AnnData:
    _require_hdf5(path, "an AnnData .h5ad file")
    _check_hdf5(path)
    try:
        return ad.read_h5ad(path)
    except MemoryError:
        raise  # not a damaged file: the reader's memory ran out (dashboard.reading says so)
    except Exception as err:  # h5py/anndata raise many types for damaged files
        raise DataLoadError(
            f"Could not read '{path.name}' as an .h5ad file: it looks truncated or corrupt ({describe_error(err)}). "
            "Export it again, or copy it again in full."
        ) from err


def _read_10x_h5(path: Path) -> ad.AnnData:
    _require_hdf5(path, "a 10x Genomics .h5 file")
    _check_hdf5(path)
    try:
        with warnings.catch_warnings():  # duplicate gene symbols are usual in 10x files: make_names_unique reports them
            warnings.filterwarnings("ignore", message="Variable names are not unique")
            return sc.read_10x_h5(path)
    except MemoryError:
        raise
    except Exception as err:
        raise DataLoadError(
            f"Could not read '{path.name}' as a 10x Genomics .h5 matrix ({describe_error(err)}). Use Cell Ranger's "
            "filtered_feature_bc_matrix.h5; if the file is an AnnData file, its name must end in .h5ad."
        ) from err


def _check_hdf5(path: Path) -> None:
    """What the file declares, before anything is read (:func:`scvi_core.limits.check_hdf5_size`)."""
    try:
        limits.check_hdf5_size(path, path.name)
    except OSError as err:
        raise DataLoadError(f"Could not open '{path.name}' as HDF5: it looks truncated or corrupt "
                            f"({describe_error(err)}). Export it again, or copy it again in full.") from err


def _require_hdf5(path: Path, what: str) -> None:
    """HDF5 files start with a fixed signature; anything else has the wrong extension or is damaged."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == _HDF5_SIGNATURE:
        return
    if head[:2] == b"\x1f\x8b":
        looks = "a gzip-compressed file"
    elif head[:4] == b"PK\x03\x04":
        looks = "a zip archive"
    elif all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        looks = "a text file (e.g. a CSV table)"
    else:
        looks = "neither HDF5 nor a known format"
    raise DataLoadError(
        f"'{path.name}' should be {what} (HDF5) but looks like {looks}. Check the file extension; if it is "
        "damaged, export or copy it again."
    )


def _read_zip(path: Path, orientation: str) -> tuple[ad.AnnData, list[str]]:
    """A .zip holding a 10x matrix triplet (in any folder inside), or exactly one other supported file."""
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="scvi_zip_") as tmp:
            members = [m for m in archive.infolist() if not m.is_dir() and not _is_junk(m.filename)]
            mtx = [m for m in members if (file_kind(m.filename) or "").startswith("mtx:")]
            chosen = mtx or [m for m in members if file_kind(m.filename) not in (None, "zip")]
            nested = [m.filename for m in members if file_kind(m.filename) == "zip"]
            if nested and not mtx and not chosen:
                raise DataLoadError(
                    f"'{path.name}' holds another archive ({nested[0]}). Archives inside archives are not opened: "
                    "unpack it and upload the matrix itself, or a .zip of it.")
            if not chosen or (not mtx and len(chosen) > 1):
                listed = ", ".join(m.filename for m in members[:6]) or "nothing"
                raise DataLoadError(
                    f"'{path.name}' should hold a 10x matrix (matrix.mtx, features.tsv or genes.tsv, barcodes.tsv) "
                    f"or one .h5ad/.h5/.csv/.tsv file, but holds: {listed}."
                )
            budget, declared = limits.expansion_budget(tmp), 0
            for member in chosen:  # declared sizes first: nothing is extracted from an archive that would not fit
                limits.check_zip_member(member, path.name, budget, declared)
                declared += member.file_size
            extracted = [_extract(archive, member, Path(tmp)) for member in chosen]
            if mtx:
                return read_mtx_files(extracted)
            return read_path(extracted[0], orientation)
    except (zipfile.BadZipFile, EOFError) as err:
        raise DataLoadError(
            f"'{path.name}' is not a readable .zip archive ({describe_error(err)}). Create it again.") from err


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, folder: Path) -> Path:
    """One member, under its base name (our own name: no zip-slip). zipfile yields at most the declared size and
    checks the CRC, so a member that lies about its size ends in BadZipFile."""
    target = folder / Path(member.filename).name
    with archive.open(member) as source, target.open("wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


def _is_junk(name: str) -> bool:
    """Files that archivers add on their own (macOS resource forks, hidden files)."""
    return name.startswith("__MACOSX/") or Path(name).name.startswith(".")


def _read_mtx_triplet(parts: dict[str, Path]) -> tuple[ad.AnnData, list[str]]:
    """Lay the three files out under the names scanpy's reader expects (Cell Ranger 2 style, uncompressed, with a
    two-column genes.tsv), read them, and keep only gene-expression features when the features file types them."""
    try:
        with limits.open_binary(parts["features"]) as handle:
            features = pd.read_csv(handle, sep="\t", header=None, dtype=str)
        with tempfile.TemporaryDirectory(prefix="scvi_mtx_") as tmp:
            folder = Path(tmp)
            budget = limits.expansion_budget(folder)
            _copy_uncompressed(parts["matrix"], folder / "matrix.mtx", budget)
            limits.check_mtx_header(folder / "matrix.mtx", parts["matrix"].name)
            _copy_uncompressed(parts["barcodes"], folder / "barcodes.tsv", budget)
            names = features[1] if features.shape[1] > 1 else features[0]
            pd.DataFrame({0: features[0], 1: names}).to_csv(folder / "genes.tsv", sep="\t", header=False, index=False)
            adata = sc.read_10x_mtx(folder, make_unique=False)
    except (limits.ExpansionRefused, MemoryError):
        raise
    except Exception as err:  # scipy's mmread, pandas and gzip errors, mismatched lengths
        raise DataLoadError(
            f"Could not read the 10x matrix ({', '.join(p.name for p in parts.values())}): {describe_error(err)}. "
            "Check that the three files belong to the same sample and are complete (matrix.mtx in MatrixMarket "
            "format)."
        ) from err
    if features.shape[1] < 3:
        return adata, []
    adata.var["feature_types"] = features[2].to_numpy()
    is_gene = (adata.var["feature_types"] == "Gene Expression").to_numpy()
    if is_gene.all() or not is_gene.any():
        return adata, []
    dropped = ", ".join(sorted(set(adata.var["feature_types"][~is_gene])))
    notice = f"Kept the {is_gene.sum()} gene-expression features; left out {(~is_gene).sum()} others ({dropped})."
    return adata[:, is_gene].copy(), [notice]


def _copy_uncompressed(source: Path, target: Path, budget: int) -> None:
    """Decompress ``source`` (when .gz) into ``target``, refused past ``budget`` bytes or a ratio no count matrix
    has (:class:`scvi_core.limits.CappedStream`)."""
    with limits.open_binary(source, budget) as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def _open_text(path: Path):
    """A table's text; a .gz one within the memory a parsed table of that text would take."""
    if not path.name.lower().endswith(".gz"):
        return path.open("r")
    budget = int(limits.memory_budget() * limits.TEXT_BYTES_PER_VALUE / 8)
    return io.TextIOWrapper(limits.open_gzip(path, budget), encoding="utf-8")


def _refuse_text_values(table: pd.DataFrame, name: str) -> None:
    """Counts must be numbers: name the first cell of the table that holds text."""
    for column in table.columns[table.dtypes == object]:
        as_numbers = pd.to_numeric(table[column], errors="coerce")
        text = as_numbers.isna() & table[column].notna()
        if text.any():
            row = table.index[np.flatnonzero(text.to_numpy())[0]]
            raise DataLoadError(
                f"'{name}' holds text where counts should be: {table.at[row, column]!r} in row {str(row)!r}, column "
                f"{str(column)!r}. Only the first column (names) and the header row may hold text."
            )
        table[column] = as_numbers


def _share(names: Sequence, pattern: re.Pattern) -> bool:
    """Whether most of (a sample of) the names match the pattern."""
    sample = [str(n) for n in list(names)[:200]]
    return bool(sample) and sum(bool(pattern.match(n)) for n in sample) > 0.8 * len(sample)


def _names(index: pd.Index) -> pd.Index:
    return pd.Index([str(n) for n in index])


def _unsupported_message(name: str, kind: str | None) -> str:
    if kind and kind.startswith("mtx:"):
        return (
            f"'{name}' is one part of a 10x matrix. Select matrix.mtx(.gz), features.tsv(.gz) (or genes.tsv) and "
            "barcodes.tsv(.gz) together, or upload them as one .zip."
        )
    return (
        f"'{name}' has an unsupported file type. Supported: .h5ad, 10x .h5, a 10x matrix (matrix.mtx, features.tsv, "
        "barcodes.tsv, optionally .gz, or all three in one .zip), and .csv/.tsv tables (optionally .gz)."
    )


def describe_error(err: BaseException) -> str:
    """A one-line description of a library error, for inclusion in a message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
