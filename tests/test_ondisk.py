"""Training and inference from counts on disk (an AnnData opened backed, anndata's sparse_dataset): same results as
in memory, the matrix never read whole, the chunk-shuffled order, and the usual refusals of non-count data."""

import threading

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata._core.sparse_dataset import BaseCompressedSparseDataset
from anndata.abc import CSRDataset
from anndata.io import sparse_dataset

from scvi_core import AUTOZI, SCVI, simulate
from scvi_core.data import _ondisk as ondisk
from scvi_core.data import CountsError
from scvi_core.data import CountData, minibatch_starts

TRAIN = dict(max_epochs=3, early_stopping=False, batch_size=64, seed=4)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """600 simulated cells × 80 genes in memory and written as an .h5ad."""
    adata = simulate(n_cells=600, n_genes=80, n_cell_types=3, seed=5)
    path = tmp_path_factory.mktemp("ondisk") / "small.h5ad"
    adata.write_h5ad(path)
    return adata, path


def backed(path):
    return ad.read_h5ad(path, backed="r")


def test_same_seed_gives_the_same_history_from_disk_as_in_memory(small_file):
    adata, path = small_file
    in_memory, on_disk = adata.copy(), backed(path)
    histories, latents = [], []
    for data in (in_memory, on_disk):
        SCVI.setup_anndata(data, batch_key="batch")
        model = SCVI(data)
        model.train(**TRAIN)
        histories.append(model.history.drop(columns="seconds"))
        latents.append(model.get_latent_representation())
    assert model.data.on_disk
    pd.testing.assert_frame_equal(histories[0], histories[1])
    np.testing.assert_array_equal(latents[0], latents[1])


@pytest.fixture
def read_sizes(monkeypatch):
    """The number of rows of every read from disk; anndata's own reads (whole or sliced) raise."""
    sizes = []
    original = ondisk.DiskMatrix.range

    def recording(self, start, stop):
        sizes.append(stop - start)
        return original(self, start, stop)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the on-disk matrix was read through anndata (whole or sliced)")

    monkeypatch.setattr(ondisk.DiskMatrix, "range", recording)
    monkeypatch.setattr(BaseCompressedSparseDataset, "to_memory", refuse)
    monkeypatch.setattr(BaseCompressedSparseDataset, "__getitem__", refuse)
    return sizes


def test_a_backed_matrix_is_never_loaded_whole(tmp_path, read_sizes, monkeypatch):
    monkeypatch.setattr(ondisk, "CHUNK_ROWS", 256)
    monkeypatch.setattr(ondisk, "BUFFER_CHUNKS", 4)  # 1,024-cell buffers: several per epoch
    adata = simulate(n_cells=6000, n_genes=40, n_cell_types=2, seed=1)
    adata.write_h5ad(tmp_path / "big.h5ad")
    on_disk = backed(tmp_path / "big.h5ad")
    SCVI.setup_anndata(on_disk)
    model = SCVI(on_disk, n_hidden=16)
    assert isinstance(model.data.matrix, ondisk.DiskMatrix) and isinstance(model.data.matrix.stored, CSRDataset)
    read_sizes.clear()
    model.train(max_epochs=1, early_stopping=False, batch_size=256)
    latent = model.get_latent_representation()
    assert latent.shape == (6000, 10) and np.isfinite(latent).all()
    assert read_sizes and max(read_sizes) <= 256  # chunk-sized reads only, never the 6,000 cells
    assert sum(read_sizes) < 3 * 6000  # training, validation and the latent pass: about one read of each cell


def test_inference_on_a_backed_anndata_equals_in_memory(small_file, tmp_path):
    adata, path = small_file
    in_memory = adata.copy()
    AUTOZI.setup_anndata(in_memory, batch_key="batch")
    model = AUTOZI(in_memory)
    model.train(max_epochs=2, early_stopping=False)
    model.save(tmp_path / "model")
    from_disk = AUTOZI.load(tmp_path / "model", backed(path))
    assert from_disk.data.on_disk
    cells = np.array([590, 3, 3, 250, 17])  # any order, repeats
    np.testing.assert_array_equal(from_disk.get_latent_representation(), model.get_latent_representation())
    np.testing.assert_array_equal(from_disk.get_latent_representation(indices=cells),
                                  model.get_latent_representation(indices=cells))
    pd.testing.assert_frame_equal(from_disk.get_normalized_expression(transform_batch="batch_1"),
                                  model.get_normalized_expression(transform_batch="batch_1"))
    pd.testing.assert_frame_equal(from_disk.get_zero_inflation_table(), model.get_zero_inflation_table())
    de = dict(groupby="cell_type", group1="type_1", max_cells_per_group=100, n_samples=200)
    pd.testing.assert_frame_equal(from_disk.differential_expression(**de), model.differential_expression(**de))


def test_disk_rows_come_back_in_the_order_asked_for(tmp_path):
    x = sp.random(500, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    x.data[:] = np.ceil(x.data * 5)
    ad.AnnData(x).write_h5ad(tmp_path / "sparse.h5ad")
    ad.AnnData(x.toarray()).write_h5ad(tmp_path / "dense.h5ad")
    ad.AnnData(x).write_zarr(tmp_path / "sparse.zarr")
    import zarr

    stored = [backed(tmp_path / "sparse.h5ad").X, h5py.File(tmp_path / "dense.h5ad")["X"],
              sparse_dataset(zarr.open_group(tmp_path / "sparse.zarr", mode="r")["X"])]
    index = np.random.default_rng(0).choice(500, 300)  # unsorted, with repeats, near and far apart
    for matrix in map(ondisk.DiskMatrix, stored):
        for asked in (index, np.arange(100, 400), np.array([499, 0]), np.array([], dtype=int)):
            block = matrix[asked]
            np.testing.assert_array_equal(block.toarray() if sp.issparse(block) else block, x[asked].toarray())
        np.testing.assert_array_equal(np.asarray(sp.csr_matrix(matrix[7:19]).toarray()), x[7:19].toarray())


def test_chunk_shuffle_is_seeded_and_mixes_whole_chunks_within_buffers():
    cells = np.delete(np.arange(10_000), np.arange(0, 10_000, 7))  # held-out cells leave gaps
    order, starts = ondisk.chunk_shuffle(cells, np.random.default_rng(3), chunk_rows=100, buffer_chunks=8)
    again, _ = ondisk.chunk_shuffle(cells, np.random.default_rng(3), chunk_rows=100, buffer_chunks=8)
    np.testing.assert_array_equal(order, again)
    assert sorted(order) == sorted(cells)
    chunk_of = {c: i // 100 for i, c in enumerate(np.sort(cells))}
    for first, last in zip(starts, [*starts[1:], len(order)], strict=True):
        chunks = {chunk_of[c] for c in order[first:last]}
        assert len(chunks) <= 8 and sum(1 for c in order[first:last]) == sum(
            1 for c in cells if chunk_of[c] in chunks)  # a buffer holds whole chunks
    small = np.arange(500)
    np.testing.assert_array_equal(ondisk.chunk_shuffle(small, np.random.default_rng(3))[0],
                                  np.random.default_rng(3).permutation(small))


def test_sharded_minibatches_from_disk_cover_each_minibatch_once(small_file, monkeypatch):
    monkeypatch.setattr(ondisk, "CHUNK_ROWS", 50)
    monkeypatch.setattr(ondisk, "BUFFER_CHUNKS", 2)
    _, path = small_file
    on_disk = backed(path)
    SCVI.setup_anndata(on_disk)
    data = CountData(on_disk)
    cells = np.arange(5, 580)
    shards = [list(data.minibatches(cells, 64, "cpu", np.random.default_rng(1), shard=(rank, 2))) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(minibatch_starts(len(cells), 64, 2))
    seen = np.concatenate([b.index.numpy() for pair in zip(*shards, strict=True) for b in pair])
    np.testing.assert_array_equal(np.sort(seen), cells)
    dense = on_disk.X[:]
    batch = shards[1][3]
    np.testing.assert_array_equal(batch.x.numpy(), dense[batch.index.numpy()].toarray())


def test_non_counts_on_disk_are_refused_with_the_usual_message(tmp_path):
    adata = simulate(n_cells=200, n_genes=30, seed=2)
    adata.X = adata.X.astype(np.float32)
    adata.X.data[5] = 2.5
    adata.write_h5ad(tmp_path / "normalised.h5ad")
    with pytest.raises(CountsError, match="non-integer value .* look"):
        SCVI.setup_anndata(backed(tmp_path / "normalised.h5ad"))
    ad.AnnData(sp.csc_matrix(adata.X)).write_h5ad(tmp_path / "by_gene.h5ad")
    with pytest.raises(CountsError, match="gene by gene"):
        SCVI.setup_anndata(backed(tmp_path / "by_gene.h5ad"))


def test_write_shuffled_copy_keeps_every_cell_with_its_counts(small_file, tmp_path):
    adata, path = small_file
    copy = ad.read_h5ad(ondisk.write_shuffled_copy(backed(path), tmp_path / "shuffled.h5ad", seed=1))
    assert list(copy.obs_names) != list(adata.obs_names)
    back = copy[adata.obs_names]
    np.testing.assert_array_equal(back.X.toarray(), adata.X.toarray())
    pd.testing.assert_frame_equal(back.obs, adata.obs)


def test_prefetch_raises_in_the_consumer_and_stops_when_closed():
    def failing():
        yield 1
        raise OSError("disk gone")

    items = ondisk.prefetch(failing())
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)
    endless = ondisk.prefetch(iter(int, 1))
    next(endless)
    endless.close()
    assert not any(t.name == "scvi-prefetch" for t in threading.enumerate())


def test_a_working_copy_of_data_on_disk_shares_the_counts_and_registers_apart(small_file):
    """What the dashboard registers (a run) or reuses (another model on a run's data): anndata cannot copy counts
    on disk, and registering the copy must not touch the original."""
    from scvi_core.io import open_on_disk, working_copy

    adata, path = small_file
    opened, _ = open_on_disk(path)
    copy = working_copy(opened)
    AUTOZI.setup_anndata(copy, batch_key="batch")
    assert "_scvi_core" in copy.uns and "_scvi_core" not in opened.uns
    assert copy.X is opened.X and isinstance(CountData(copy).matrix, ondisk.DiskMatrix)
    np.testing.assert_array_equal(CountData(copy).matrix[10:20].toarray(), adata.X[10:20].toarray())
