"""A reader's AnnData handed to the server (dashboard.handover): everything comes back equal, the matrices mapped
from their files rather than copied, writable without touching the files, and usable after the files are gone."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dashboard import handover


def annotated(rng) -> ad.AnnData:
    """An AnnData with every kind of slot a user's .h5ad may carry."""
    counts = sp.random(30, 12, density=0.3, format="csr", dtype=np.float32, random_state=0)
    counts.data = np.round(counts.data * 10) + 1
    adata = ad.AnnData(counts, obs=pd.DataFrame({"batch": list("ab") * 15}, index=[f"c{i}" for i in range(30)]),
                       var=pd.DataFrame({"symbol": [f"G{i}" for i in range(12)]}, index=[f"g{i}" for i in range(12)]))
    adata.layers["dense counts"] = counts.toarray().astype(np.int64)
    adata.layers["csc"] = sp.csc_matrix(counts)
    adata.layers["labels"] = np.full((30, 12), "x", dtype=object)  # not numeric: stays in the .h5ad
    adata.obsm["X_pca"] = rng.normal(size=(30, 2))
    adata.uns["note"] = "kept"
    adata.raw = ad.AnnData(sp.csr_matrix(counts.toarray()[:, :10] * 2), obs=adata.obs,
                           var=pd.DataFrame({"id": list("abcdefghij")}, index=[f"r{i}" for i in range(10)]))
    return adata


@pytest.mark.parametrize("room", ["in memory", "no room in memory"])
def test_what_is_handed_over_comes_back_equal_and_mapped(tmp_path, room):
    original = annotated(np.random.default_rng(0))
    original.write_h5ad(tmp_path / "whole.h5ad")  # the old hand-over: all of it through one .h5ad
    expected = ad.read_h5ad(tmp_path / "whole.h5ad")
    (tmp_path / "whole.h5ad").unlink()
    prefix = tmp_path / "session" / "read-1"
    prefix.parent.mkdir()
    memory = tmp_path / "memory" if room == "in memory" else tmp_path / "no such folder"
    (tmp_path / "memory").mkdir()
    handed = handover.give(original, prefix, memory / "read-1")
    assert {m["slot"] for m in handed["matrices"]} == {"X", "layers/dense counts", "layers/csc", "raw"}
    arrays = [path for path in tmp_path.rglob("*.npy")]
    assert len(arrays) == 3 * 3 + 1 and {p.parent for p in arrays} == {memory if room == "in memory" else prefix.parent}
    back = handover.take(prefix, handed)

    assert type(back.X) is sp.csr_matrix and type(back.layers["csc"]) is sp.csc_matrix
    assert np.array_equal(back.X.toarray(), expected.X.toarray())
    for name in expected.layers:
        got, want = back.layers[name], expected.layers[name]
        assert np.array_equal(got.toarray() if sp.issparse(got) else got,
                              want.toarray() if sp.issparse(want) else want)
    assert back.layers["dense counts"].dtype == np.int64
    assert np.array_equal(back.raw.X.toarray(), expected.raw.X.toarray())
    assert list(back.raw.var_names) == list(expected.raw.var_names) and list(back.raw.var["id"]) == list("abcdefghij")
    pd.testing.assert_frame_equal(back.obs, expected.obs)
    pd.testing.assert_frame_equal(back.var, expected.var)
    assert np.array_equal(back.obsm["X_pca"], expected.obsm["X_pca"]) and back.uns["note"] == "kept"

    mapped = back.X.data
    while mapped.base is not None and not isinstance(mapped, np.memmap):
        mapped = mapped.base
    assert isinstance(mapped, np.memmap), "X's values are the file's pages, not a copy"

    on_disk = {path: np.load(path) for path in arrays}
    back.X.data[:] = -1  # copy-on-write: the server's change stays in its memory, the files keep what was read
    back.layers["dense counts"][0, 0] = 99
    assert all(np.array_equal(np.load(path), saved) for path, saved in on_disk.items())
    for path in [*handover.files(prefix), *arrays]:
        path.unlink(missing_ok=True)
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]
    assert back.X.sum() == -back.X.nnz and back.layers["dense counts"][0, 0] == 99  # still usable, files gone


def test_in_memory_files_of_a_server_that_is_gone_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(handover, "IN_MEMORY", tmp_path)
    mine = handover.in_memory_prefix(tmp_path / "read-1").with_suffix(".58.npy")
    orphan = tmp_path / f"{handover.ORPHAN_PREFIX}999999999-read-2.58.npy"  # above Linux's largest pid
    other = tmp_path / "someone else's.npy"
    for path in (mine, orphan, other):
        path.write_bytes(b"x")
    handover.remove_orphans()
    assert mine.exists() and not orphan.exists() and other.exists()
