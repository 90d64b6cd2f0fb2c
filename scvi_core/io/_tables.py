"""Reading dense count tables (``.csv`` / ``.tsv`` / ``.txt``, optionally ``.gz``): which way round they are (cells ×
genes or genes × cells, guessed from the names and said), and text where counts should be, named."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _limits as limits
from ._errors import DataLoadError, describe_error, refusals_as_load_errors

CELLS_BY_GENES = "cells × genes"
GENES_BY_CELLS = "genes × cells"
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
_BARCODE = re.compile(r"^([A-Za-z0-9]+[_:.-])?[ACGTN]{8,}([-_.][A-Za-z0-9]+)?$")
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}")
_CELL_WORDS = re.compile(r"^(cell|barcode|sample|well)", re.IGNORECASE)
_GENE_WORDS = re.compile(r"^(gene|ercc-)", re.IGNORECASE)


@refusals_as_load_errors
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

