"""Limits on what an input file may expand to, checked before it is parsed and while it is decompressed.

Why: files are read in the process that serves every session. A 1.7 MB ``.zip`` holding one CSV that expands to
1 GiB made that process grow by 12.8 GB for 54 s; a slightly larger one would have taken the machine, and every
user's session, into the out-of-memory killer. Real count matrices never compress like that: a dense CSV of the
PBMC demo's 2,860 × 2,000 counts gzips 11-fold, its 500 emptiest genes 55-fold, while a table of zeros gzips
300-fold and deflate reaches 1,000-fold. So every compressed stream (``.gz``, a zip member) is refused as soon as

- it has expanded more than ``MAX_EXPANSION_RATIO`` times what it consumed (checked once ``RATIO_GRACE_BYTES`` have
  come out, so that a small header cannot trip it), or
- it has expanded past the budget (:func:`expansion_budget`: a share of the free disk and of the available memory);

a zip member's declared sizes are checked before anything is extracted, and what a table or matrix header declares
(its columns, its shape, the sizes of an HDF5 file's datasets) is checked before it is parsed. Each refusal is a
:class:`ExpansionRefused` (a :class:`~scvi_core.io.DataLoadError`) that says what was found and what to do.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import zipfile
from pathlib import Path

import h5py

MAX_EXPANSION_RATIO = 200
RATIO_GRACE_BYTES = 16 << 20
MAX_FEATURES = 100_000
"""More genes (features) than any genome has: a matrix that declares more is refused before it is read."""
BYTES_PER_MTX_ENTRY = 30
"""Memory one non-zero of a MatrixMarket file takes while it is read: its coordinates and value as parsed (two int32
and an int64) and the CSR matrix they become (an int32 index and an int64 value), both held during the conversion
(28 bytes; 28.5 measured at the peak for 16 M non-zeros)."""
MAX_TABLE_COLUMNS = 200_000
"""Columns of a dense text table (genes, or cells when genes are rows): beyond this a dense table cannot be held."""
MEMORY_SHARE = 0.5
"""Of the available memory, what one file may take once read."""
DISK_SHARE = 0.5
"""Of the free disk where it is extracted, what one file may expand to."""
TEXT_BYTES_PER_VALUE = 2
"""A dense table of counts spends at least two characters per value ("0,"), which pandas holds in 8 bytes."""
CONVERT = ("Convert it to .h5ad (scanpy: sc.read_csv(...).write_h5ad(...), or anndata's own writers), which stores "
           "only the non-zero counts, or copy it into the server's data directory and open it from there.")


class ExpansionRefused(ValueError):
    """A file would expand, or declares it would expand, past what this server may hold. The message says what."""


def available_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo (Linux); without it, the physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget() -> int:
    return int(MEMORY_SHARE * available_memory_bytes())


def expansion_budget(folder: str | Path) -> int:
    """How many bytes one file may decompress to when extracted into ``folder``: a share of its free disk, and no
    more than the memory a reader may use (what is extracted is read next)."""
    return int(min(DISK_SHARE * shutil.disk_usage(folder).free, memory_budget()))


def _gib(n_bytes: float) -> str:
    """A size for a person: GB, MB, or kB."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:,.1f} GB"
    return f"{n_bytes / 2**20:,.0f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:,.0f} kB"


class CappedStream(io.RawIOBase):
    """A decompressing stream that refuses to expand past ``budget`` bytes or ``MAX_EXPANSION_RATIO`` × what it has
    consumed from ``raw`` (the compressed file, whose position says how much was consumed)."""

    def __init__(self, stream, raw, name: str, budget: int, offset: int = 0):
        self.stream, self.raw, self.name, self.budget, self.offset = stream, raw, name, budget, offset
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.produced += len(data)
        consumed = max(1, self.raw.tell() - self.offset)
        if self.produced > self.budget:
            raise ExpansionRefused(
                f"'{self.name}' expands to more than {_gib(self.budget)}, more than this server may hold for one file "
                f"(from {_gib(consumed)} compressed). {CONVERT}")
        if self.produced > RATIO_GRACE_BYTES and self.produced > MAX_EXPANSION_RATIO * consumed:
            raise ExpansionRefused(
                f"'{self.name}' expands more than {MAX_EXPANSION_RATIO}-fold ({_gib(self.produced)} from "
                f"{_gib(consumed)} so far): no count matrix compresses like that (real ones: 10–60-fold), so it was "
                f"not read further. If it is genuine, {CONVERT[0].lower() + CONVERT[1:]}")
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        self.raw.close()
        super().close()


def open_gzip(path: Path, budget: int | None = None) -> io.BufferedReader:
    """``path`` (a .gz file) decompressed as a binary stream, within :class:`CappedStream`'s limits."""
    raw = path.open("rb")
    capped = CappedStream(gzip.GzipFile(fileobj=raw), raw, path.name, memory_budget() if budget is None else budget)
    return io.BufferedReader(capped, buffer_size=1 << 20)


def open_binary(path: Path, budget: int | None = None) -> io.BufferedIOBase:
    """A file's bytes, decompressed within limits (``budget``: default the memory budget) when its name ends in .gz."""
    return open_gzip(path, budget) if path.name.lower().endswith(".gz") else path.open("rb")


def check_zip_member(member: zipfile.ZipInfo, archive_name: str, budget: int, already: int) -> None:
    """Refuse a member whose declared size, with what was extracted before it, passes the budget, or whose declared
    compression ratio no count matrix has. (zipfile itself never yields more than the declared size, and a member
    whose data do not match it fails its CRC check.)"""
    if already + member.file_size > budget:
        raise ExpansionRefused(
            f"'{archive_name}' holds '{member.filename}', which expands to {_gib(member.file_size)}: more than this "
            f"server may hold for one upload ({_gib(budget)}). {CONVERT}")
    ratio = member.file_size / max(member.compress_size, 1)
    if member.file_size > RATIO_GRACE_BYTES and ratio > MAX_EXPANSION_RATIO:
        raise ExpansionRefused(
            f"'{archive_name}' holds '{member.filename}', which declares it expands {ratio:,.0f}-fold "
            f"({_gib(member.compress_size)} → {_gib(member.file_size)}): no count matrix compresses like that (real "
            f"ones: 10–60-fold), so it was not extracted. If it is genuine, {CONVERT[0].lower() + CONVERT[1:]}")


def extract_zip_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path,
                        archive_name: str) -> list[Path]:
    """Extract ``members`` into ``folder`` under their base names (names of our own: no path in the archive leads
    out of it), once their declared sizes together are checked against the budget (:func:`check_zip_member`):
    nothing is extracted from an archive that would not fit. zipfile yields at most a member's declared size and
    checks its CRC, so a member that lies about its size ends in ``zipfile.BadZipFile``."""
    budget, declared = expansion_budget(folder), 0
    for member in members:
        check_zip_member(member, archive_name, budget, declared)
        declared += member.file_size
    extracted = []
    for member in members:
        target = folder / Path(member.filename).name
        with archive.open(member) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
        extracted.append(target)
    return extracted


def check_table_header(first_line: str, sep: str, name: str, n_bytes: int) -> None:
    """Before a dense table is parsed: refuse more columns than ``MAX_TABLE_COLUMNS``, and a file whose text
    (``n_bytes``, decompressed size when known) would need more memory than this server may give it."""
    columns = first_line.count(sep)
    if columns > MAX_TABLE_COLUMNS:
        raise ExpansionRefused(
            f"'{name}' declares {columns:,} columns in its header: more genes than any genome has, or more cells than "
            f"a dense table can hold here. {CONVERT}")
    needed = n_bytes / TEXT_BYTES_PER_VALUE * 8
    if needed > memory_budget():
        raise ExpansionRefused(
            f"'{name}' is a dense table of {_gib(n_bytes)}: read, it would need about {_gib(needed)}, more than this "
            f"server may give one file ({_gib(memory_budget())}). {CONVERT}")


def check_mtx_header(handle: io.BufferedIOBase, name: str) -> None:
    """Before a MatrixMarket file is parsed (``handle``: its bytes from the start): its size line ("rows columns
    non-zeros") must declare no more features than ``MAX_FEATURES`` and no more non-zeros than fit in the memory
    budget (BYTES_PER_MTX_ENTRY each)."""
    line = handle.readline()
    while line.startswith(b"%"):
        line = handle.readline()
    parts = line.split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return  # not a coordinate header: the reader itself says what is wrong
    rows, columns, nonzero = (int(p) for p in parts)
    if rows > MAX_FEATURES:
        raise ExpansionRefused(
            f"'{name}' declares {rows:,} features (rows): more genes than any genome has. Check that it is a gene "
            "expression matrix (10x: matrix.mtx with features in rows).")
    if nonzero * BYTES_PER_MTX_ENTRY > memory_budget():
        raise ExpansionRefused(
            f"'{name}' declares {nonzero:,} non-zero counts ({rows:,} × {columns:,}): about "
            f"{_gib(nonzero * BYTES_PER_MTX_ENTRY)} to read, more than this server may give one file ({_gib(memory_budget())}). Copy it into the server's data "
            "directory and convert it to .h5ad there, then open that on disk.")


def check_hdf5_size(path: Path, name: str) -> None:
    """Before an HDF5 file (.h5ad, 10x .h5) is read: the datasets it declares — what reading it allocates, whatever
    their compression on disk — must fit in the memory budget."""
    total = 0

    def add(_, item):
        nonlocal total
        if isinstance(item, h5py.Dataset):
            total += item.size * item.dtype.itemsize

    with h5py.File(path, "r") as handle:
        handle.visititems(add)
    if total > memory_budget():
        raise ExpansionRefused(
            f"'{name}' declares {_gib(total)} of data once read: more than this server may give one file "
            f"({_gib(memory_budget())}). Copy it into the server's data directory and open it there: .h5ad files "
            "that large are opened on disk and trained on without loading them.")
