"""Opening an ``.h5ad`` too large to load: obs and var read, the counts left on disk, and the file and layer recorded
(``uns[ON_DISK_KEY]``) so that a training process or a results page opens the same counts again."""

from __future__ import annotations

import copy
from pathlib import Path

import anndata as ad

from ..data import ON_DISK_KEY
from ._errors import DataLoadError, damaged
from ._readers import make_names_unique, require_hdf5


def open_on_disk(path: str | Path, layer: str | None = None) -> tuple[ad.AnnData, list[str]]:
    """Open an .h5ad too large to load: obs and var are read, X and the layers stay on disk (read chunk by chunk
    when used, see :mod:`scvi_core.data._ondisk`); .raw, obsm, obsp and uns are left out. With ``layer``, that layer
    is the returned AnnData's X. ``uns[ON_DISK_KEY]`` records the file and layer, so that a training process opens
    the same counts again (:func:`reopen_on_disk`)."""
    import h5py  # noqa: PLC0415
    from anndata.io import read_elem, sparse_dataset  # noqa: PLC0415

    path = Path(path)
    require_hdf5(path, "an AnnData .h5ad file")
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
        raise damaged(path.name, "an .h5ad file", err) from err
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

