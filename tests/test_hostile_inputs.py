"""Files built to hurt the server (issue 23): each is refused before it is parsed or as soon as it expands too far,
within seconds, with a message that says what was found and what to do — through the readers and through the Load
data page — and legitimate compressed files still load. Uploads belong to their session: no shared live object."""

import gzip
import io as stdio
import struct
import time
import zipfile

import h5py
import numpy as np
import pytest

from scvi_core import io
from scvi_core.io import _limits as limits
from tests import datafiles
from tests.conftest import new_app
from tests.test_app_load_data import assert_clean, sidebar, texts, upload

ZERO_ROW = b"c," + b"0," * 499 + b"0\n"
HEADER = b"cell," + b",".join(b"g%d" % i for i in range(500)) + b"\n"


def zeros_csv(n_bytes: int):
    """Chunks of a dense table of zeros, about ``n_bytes`` long: what a zip or gzip bomb expands to."""
    yield HEADER
    block = ZERO_ROW * 2000
    for _ in range(n_bytes // len(block) + 1):
        yield block


def zip_bomb(n_bytes: int = 64 << 20) -> bytes:
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("counts.csv", "w") as member:
        for chunk in zeros_csv(n_bytes):
            member.write(chunk)
    return buffer.getvalue()


def gzip_bomb(n_bytes: int = 48 << 20) -> bytes:
    buffer = stdio.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as stream:
        for chunk in zeros_csv(n_bytes):
            stream.write(chunk)
    return buffer.getvalue()


def lying_zip() -> bytes:
    """A zip whose one member declares a tenth of its real size (local header and central directory agree)."""
    data = bytearray(datafiles.zip_bytes({"counts.csv": datafiles.table_bytes(datafiles.tiny_counts())}, folder=""))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    real = struct.unpack_from("<I", data, local + 22)[0]
    struct.pack_into("<I", data, local + 22, real // 10)
    struct.pack_into("<I", data, central + 24, real // 10)
    return bytes(data)


def mtx_triplet(header: bytes) -> dict[str, bytes]:
    files = datafiles.mtx_files(datafiles.tiny_counts(), compressed=False)
    matrix = files["matrix.mtx"].split(b"\n")
    size_line = next(i for i, line in enumerate(matrix) if not line.startswith(b"%"))
    matrix[size_line] = header
    return files | {"matrix.mtx": b"\n".join(matrix)}


def hdf5_declaring(shape: tuple[int, int]) -> bytes:
    """An .h5ad-looking HDF5 file whose X declares ``shape`` float32 values, stored compressed and never written:
    a few kilobytes on disk."""
    buffer = stdio.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("X", shape=shape, dtype="float32", chunks=(1000, 1000), compression="gzip")
    return buffer.getvalue()


HOSTILE = {
    "zip bomb": ({"bomb.zip": zip_bomb()}, "declares it expands"),
    "gzip bomb": ({"bomb.csv.gz": gzip_bomb()}, "expands more than 200-fold"),
    "nested archive": ({"outer.zip": datafiles.zip_bytes({"inner.zip": zip_bomb(1 << 20)}, folder="")},
                       "holds another archive"),
    "member lying about its size": ({"liar.zip": lying_zip()}, "not a readable .zip archive"),
    "matrix header with more genes than a genome": (mtx_triplet(b"250000 8 20"), "declares 250,000 features"),
    "matrix header with a trillion counts": (mtx_triplet(b"20 8 1000000000000"), "declares 1,000,000,000,000 non-zero"),
    "HDF5 declaring 400 GB": ({"huge.h5ad": hdf5_declaring((1_000_000, 100_000))}, "declares 372.5 GB of data"),
    "table header with 300,000 columns": ({"wide.csv": b"cell," + b"g," * 300_000 + b"g\nc1" + b",0" * 300_001 + b"\n"},
                                          "declares 300,001 columns"),
    "not gzip despite its name": ({"table.csv.gz": b"cell,g1\nc1,3\n"}, "Could not read 'table.csv.gz' as a table"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_upload_is_refused_quickly_with_a_message(app, case):
    files, expected = HOSTILE[case]
    start = time.perf_counter()
    upload(app, files)
    assert time.perf_counter() - start < 5.0
    assert_clean(app)
    assert expected in texts(app.error)
    assert "nothing loaded yet" in sidebar(app)


def test_the_bombs_are_refused_by_the_readers_before_they_expand(tmp_path):
    """Refused from what the archive declares (nothing extracted), and a gzip stream after RATIO_GRACE_BYTES."""
    for name, content in (("bomb.zip", zip_bomb()), ("bomb.csv.gz", gzip_bomb())):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(io.DataLoadError, match="no count matrix compresses like that"):
            io.read_path(path)
    assert not list(tmp_path.glob("scvi_*"))


def test_budgets_refuse_what_would_not_fit(tmp_path, monkeypatch):
    """With the memory budget lowered to 1 MB, a 3 MB table is refused before it expands past it (gzipped: while
    it decompresses, before the ratio check starts) or, uncompressed, before it is parsed."""
    monkeypatch.setattr(limits, "memory_budget", lambda: 1 << 20)
    table = b"".join(zeros_csv(3 << 20))
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(table))
    with pytest.raises(io.DataLoadError, match="expands to more than"):
        io.read_path(path)
    plain = tmp_path / "big.csv"
    plain.write_bytes(table)
    with pytest.raises(io.DataLoadError, match="is a dense table of .* more than this server may give one file"):
        io.read_path(plain)


def test_legitimate_compressed_files_still_load(tmp_path):
    """A gzipped table, a zipped 10x triplet with gzipped members, and a 10x .h5 of real-looking counts."""
    adata = datafiles.tiny_counts()
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(datafiles.table_bytes(adata)))
    (tmp_path / "m.zip").write_bytes(datafiles.zip_bytes(datafiles.mtx_files(adata)))
    (tmp_path / "x.h5").write_bytes(datafiles.tenx_h5_bytes(adata))
    for name in ("t.csv.gz", "m.zip", "x.h5"):
        read, _ = io.read_path(tmp_path / name, io.CELLS_BY_GENES)
        assert read.shape == adata.shape
        assert np.array_equal(read.X.toarray(), adata.X.toarray())


def test_an_upload_belongs_to_its_session(app):
    """The same bytes uploaded in two sessions give two AnnData objects: editing one cannot change the other (a
    cache keyed by the bytes, shared by every session, used to hand both the same object and keep it resident)."""
    other = new_app()
    files = {"t.h5ad": datafiles.h5ad_bytes(datafiles.tiny_counts())}
    upload(app, files)
    upload(other, files)
    first, second = (at.session_state["workspace"].original for at in (app, other))
    assert first is not second and first.shape == second.shape
