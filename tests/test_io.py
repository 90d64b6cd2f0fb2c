"""Readers of scvi_core.io: every format gives back the same counts; every bad input gives a clear DataLoadError."""

import os
from pathlib import Path

import numpy as np
import pytest
import scanpy as sc

from dashboard import data_sources
from scvi_core import io
from scvi_core.datasets import load_pbmc3k
from tests import datafiles


@pytest.fixture(scope="module")
def tiny():
    return datafiles.tiny_counts()


def assert_same_counts(adata, tiny):
    assert adata.shape == tiny.shape
    np.testing.assert_array_equal(np.asarray(adata.X.todense()), tiny.X.toarray())
    assert list(adata.obs_names) == list(tiny.obs_names)
    assert list(adata.var_names) == list(tiny.var_names)


@pytest.mark.parametrize("kind", ["h5ad", "10x_h5", "zip", "csv", "tsv_gz"])
def test_every_file_format_reads_the_same_counts(tmp_path, tiny, kind):
    path = datafiles.write_all(tmp_path, tiny)[kind]
    adata, notices = io.read_path(path)
    assert_same_counts(adata, tiny)
    if kind in ("csv", "tsv_gz"):
        assert "names look like" in notices[0]  # barcodes or gene names decided the orientation


@pytest.mark.parametrize("compressed", [True, False])
def test_mtx_triplet_uploaded_as_three_files(tiny, compressed):
    files = datafiles.mtx_files(tiny, compressed)
    adata, _ = io.read_uploaded([(f"GSM1_{name}", content) for name, content in files.items()])
    assert_same_counts(adata, tiny)


def test_mtx_triplet_reads_as_scanpys_reader_does_duplicate_entries_summed(tmp_path, tiny):
    files = datafiles.mtx_files(tiny, compressed=False)
    header, size, *entries = files["matrix.mtx"].decode().splitlines()
    rows, columns, _ = size.split()
    entries.append(entries[0])  # the same coordinate twice: its counts add up
    files["matrix.mtx"] = "\n".join([header, f"{rows} {columns} {len(entries)}", *entries, ""]).encode()
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    expected = sc.read_10x_mtx(tmp_path, make_unique=False)
    adata, _ = io.read_mtx_files(sorted(tmp_path.iterdir()))
    np.testing.assert_array_equal(adata.X.toarray(), expected.X.toarray())
    assert adata.X.dtype == expected.X.dtype == np.float32
    assert list(adata.obs_names) == list(expected.obs_names)
    assert list(adata.var_names) == list(expected.var_names)
    assert list(adata.var["gene_ids"]) == list(expected.var["gene_ids"])
    first = entries[0].split()
    assert adata.X[int(first[1]) - 1, int(first[0]) - 1] == 2 * tiny.X[int(first[1]) - 1, int(first[0]) - 1]


def test_upload_writes_bytes_and_reads_single_files(tiny):
    adata, _ = io.read_uploaded([("x.h5ad", datafiles.h5ad_bytes(tiny))])
    assert_same_counts(adata, tiny)


def test_mtx_keeps_gene_expression_features_only(tiny):
    types = ["Gene Expression"] * (tiny.n_vars - 2) + ["Antibody Capture"] * 2
    adata, notices = io.read_uploaded(list(datafiles.mtx_files(tiny, feature_types=types).items()))
    assert adata.n_vars == tiny.n_vars - 2
    assert "Antibody Capture" in notices[0]


def test_table_orientation_choice_and_guess(tmp_path, tiny):
    path = tmp_path / "t.tsv"
    path.write_bytes(datafiles.table_bytes(tiny, "\t", genes_by_cells=True))
    assert_same_counts(io.read_path(path)[0], tiny)
    assert_same_counts(io.read_path(path, io.GENES_BY_CELLS)[0], tiny)
    assert io.read_path(path, io.CELLS_BY_GENES)[0].shape == (tiny.n_vars, tiny.n_obs)


def test_guess_orientation_from_names_and_shape():
    assert io.guess_orientation(["ENSG00000141510"] * 5, ["a", "b"])[0] == io.GENES_BY_CELLS
    assert io.guess_orientation(["x1", "x2"], ["gene_1", "gene_2", "gene_3"])[0] == io.CELLS_BY_GENES
    assert io.guess_orientation([f"r{i}" for i in range(50)], ["c1", "c2"])[0] == io.GENES_BY_CELLS


def test_duplicate_names_are_made_unique_with_a_notice(tiny):
    names = list(tiny.var_names)
    names[1] = names[0]
    adata, notices = io.read_uploaded([("dup.h5", datafiles.tenx_h5_bytes(tiny, names))])
    assert adata.var_names.is_unique
    assert any("duplicate gene names" in n and "'Gene0'" in n for n in notices)


BAD_FILES = {
    "empty": ("empty.h5ad", b"", "is empty (0 bytes)"),
    "truncated h5ad": ("cut.h5ad", None, "truncated or corrupt"),
    "csv named h5ad": ("table.h5ad", b"gene,a\nx,1\n", "looks like a text file"),
    "wrong extension": ("counts.xlsx", b"PK\x03\x04", "unsupported file type"),
    "text in matrix": ("bad.csv", b"cell,g1,g2\nc1,1,2\nc2,3,abc\n", "'abc' in row 'c2', column 'g2'"),
    "header only": ("head.csv", b"cell,g1,g2\n", "0 data rows"),
    "corrupt zip": ("x.zip", b"PK\x03\x04garbage", "not a readable .zip"),
    "zip without counts": ("notes.zip", None, "holds: notes.pdf"),
    "single mtx part": ("matrix.mtx", b"%%MatrixMarket", "missing: features.tsv(.gz), barcodes.tsv(.gz)"),
    "not a 10x h5": ("x.h5", None, "10x Genomics .h5"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_give_actionable_messages(tiny, case):
    name, content, expected = BAD_FILES[case]
    if case == "truncated h5ad":
        content = datafiles.h5ad_bytes(tiny)[:3000]
    elif case == "zip without counts":
        content = datafiles.zip_bytes({"notes.pdf": b"hello"}, folder="")
    elif case == "not a 10x h5":
        content = datafiles.h5ad_bytes(tiny)
    with pytest.raises(io.DataLoadError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        io.read_uploaded([(name, content)])


def test_mismatched_mtx_files_are_refused(tiny):
    files = datafiles.mtx_files(tiny)
    files["barcodes.tsv.gz"] = datafiles.gzip_bytes(b"AAAC-1\n")
    shape = f"{tiny.n_vars:,} features × {tiny.n_obs:,} cells, but 'features.tsv.gz' lists {tiny.n_vars:,} features "
    with pytest.raises(io.DataLoadError, match=shape + "and 'barcodes.tsv.gz' 1 barcodes.*belong to the same sample"):
        io.read_uploaded(list(files.items()))


def test_resolve_data_path_refuses_anything_outside(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "secret.h5ad"
    data.mkdir()
    outside.write_bytes(b"x")
    (data / "ok.h5ad").write_bytes(b"x")
    os.symlink(outside, data / "link.h5ad")
    assert data_sources.resolve_data_path("ok.h5ad", data) == (data / "ok.h5ad").resolve()
    for name in ("../secret.h5ad", str(outside), "link.h5ad", "sub/../../secret.h5ad"):
        with pytest.raises(io.DataLoadError, match="outside the data directory"):
            data_sources.resolve_data_path(name, data)
    with pytest.raises(io.DataLoadError, match="no file 'missing.h5ad'"):
        data_sources.resolve_data_path("missing.h5ad", data)
    assert data_sources.list_data_files(data) == ["ok.h5ad"]
    with pytest.raises(io.DataLoadError, match="does not exist"):
        data_sources.resolve_data_path("ok.h5ad", tmp_path / "nowhere")


def test_upload_size_limit_message():
    data_sources.check_upload_size(1024**2, 1)
    with pytest.raises(io.DataLoadError, match="over the limit of 1 MB.*data directory"):
        data_sources.check_upload_size(2 * 1024**2, 1)


def test_public_download_fails_clearly_offline(tmp_path, monkeypatch):
    def offline():
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(sc.datasets, "pbmc3k", offline)
    with pytest.raises(io.DataLoadError, match="offline.*demo data"):
        load_pbmc3k(tmp_path)


def test_demo_datasets_have_ground_truth():
    adata = data_sources.demo_dataset("quick")
    assert adata.shape == (2000, 500)
    assert {"cell_type", "batch"} <= set(adata.obs.columns)
    assert adata.var["is_zero_inflated"].any()


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="real data in ../shared is not available")
def test_real_h5ad_reads():
    adata, notices = io.read_path(SHARED / "zeisel_descend_subset" / "zeisel_descend_subset.h5ad")
    assert adata.shape == (1464, 1057)
    assert notices == []
