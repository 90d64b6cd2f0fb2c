"""Reading single-cell count data from the files biologists actually have, within limits on what a file may expand
to, with messages they can act on (:class:`DataLoadError`, never a bare library traceback).

One concept per private file, re-exported here: ``_readers`` (which format a file is and its reader: ``.h5ad``, 10x
``.h5``, the 10x matrix triplet, a ``.zip`` of either), ``_tables`` (dense ``.csv`` / ``.tsv`` tables and their
orientation), ``_on_disk`` (an ``.h5ad`` too large to load, opened with its counts left on disk), ``_limits``
(what a file may expand to, checked before and while it is read), ``_errors`` (what every reader raises).
"""

from ._errors import DataLoadError, describe_error
from ._limits import ExpansionRefused, available_memory_bytes, extract_zip_members, memory_budget
from ._on_disk import is_opened_on_disk, open_on_disk, reopen_on_disk, working_copy
from ._readers import (MTX_PARTS, archive_files, file_kind, make_names_unique, read_files, read_mtx_files, read_path,
                       read_uploaded)
from ._tables import CELLS_BY_GENES, GENES_BY_CELLS, TABLE_SUFFIXES, guess_orientation, read_table

__all__ = [
    "DataLoadError", "describe_error",
    "ExpansionRefused", "available_memory_bytes", "extract_zip_members", "memory_budget",
    "is_opened_on_disk", "open_on_disk", "reopen_on_disk", "working_copy",
    "MTX_PARTS", "archive_files", "file_kind", "make_names_unique", "read_files", "read_mtx_files", "read_path",
    "read_uploaded",
    "CELLS_BY_GENES", "GENES_BY_CELLS", "TABLE_SUFFIXES", "guess_orientation", "read_table",
]
