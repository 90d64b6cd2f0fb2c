"""A saved model whichever it is: SCVI or AUTOZI, saved by this library or by scvi-tools, as a folder or as one
``.zip`` of it (the Export page's downloads, or a scvi-tools folder someone zipped to send). A notebook user or the
dashboard opens it with :func:`load_model` without first knowing which.

A zip is opened within :mod:`scvi_core.io`'s limits: only the model's own files are extracted (``model.pt`` and those
beside it, in any one folder of the archive), after their declared sizes are checked."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anndata as ad

from ..data import Registry
from ..io import archive_files, extract_zip_members
from . import _scvi_tools as scvi_tools
from ._autozi import AUTOZI
from ._save_load import CONFIG_FILE, DATA_FILE, MODEL_FILES, WEIGHTS_FILE
from ._scvi import SCVI

MODELS = {"SCVI": SCVI, "AUTOZI": AUTOZI}
"""The models by the name ``save`` writes (``config.json``'s "model"; scvi-tools: the registry's "model_name")."""


def model_zip_bytes(model_dir: str | Path, folder: str = "") -> bytes:
    """A saved model folder's files as a zip: at its top level, or inside ``folder`` (what unzips to a folder that
    ``load`` opens, as scvi-tools' ``SCVI.load(dir)`` expects)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(model_dir).iterdir()):
            if path.is_file():
                archive.write(path, f"{folder}/{path.name}" if folder else path.name)
    return buffer.getvalue()


@contextlib.contextmanager
def opened(source: str | Path | bytes) -> Iterator[Path]:
    """The folder of a saved model: ``source`` itself, or the model's files extracted from a ``.zip`` (a path or its
    bytes) into a temporary folder, removed afterwards."""
    if not isinstance(source, bytes) and Path(source).is_dir():
        yield Path(source)
        return
    name = "the zip" if isinstance(source, bytes) else Path(source).name
    try:
        with tempfile.TemporaryDirectory(prefix="scvi_model_") as folder, \
                zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            extract_zip_members(archive, _model_members(archive, name), Path(folder), name)
            yield Path(folder)
    except zipfile.BadZipFile as err:
        raise ValueError(f"'{name}' is not a readable .zip archive ({err}). Zip the model folder again.") from err


@dataclass(frozen=True)
class SavedModel:
    """What a saved folder (either layout) holds, read once: which model, whose layout, the genes it was trained on
    in its order, and how its data were registered (where the counts are, the batch and label columns and
    categories): what data to open it on must have."""

    model_class: type
    format: str
    gene_names: list[str]
    registry: Registry


def describe(folder: str | Path) -> SavedModel:
    """Read what a saved model folder holds (:class:`SavedModel`), without building the model."""
    folder = Path(folder)
    if scvi_tools.is_scvi_tools_folder(folder):
        saved = scvi_tools.read_model_file(folder / WEIGHTS_FILE)
        kind, layout = scvi_tools.model_name(saved), "scvi-tools"
        genes, registry = [str(g) for g in saved["var_names"]], scvi_tools.registry(saved)
    else:
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise ValueError(f"{folder} holds no saved model: neither model.pt (scvi-tools) nor config.json and "
                             "model.pt (scvi_core).") from None
        kind, layout = config.get("model"), "scvi_core"
        genes, registry = config["gene_names"], Registry.from_uns(config["registry"])
    if kind not in MODELS:
        raise ValueError(f"{folder} holds a {kind!r} model; scvi_core opens {' and '.join(MODELS)}.")
    return SavedModel(MODELS[kind], layout, genes, registry)


def load_model(source: str | Path | bytes, adata: ad.AnnData | None = None, format: str = "auto"):
    """The saved model in ``source`` (a folder, a ``.zip`` of one, or the zip's bytes), as the class it was saved
    as, on ``adata`` (which must have its genes; left out, the ``adata.h5ad`` saved with it):
    ``scvi_core.model.load_model("model.zip", adata)``. ``format`` as :meth:`~scvi_core.model.SCVI.load`."""
    with opened(source) as folder:
        return describe(folder).model_class.load(folder, adata, format=format)


def _model_members(archive: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """``model.pt`` (exactly one) and the files a saved model keeps beside it in the same folder of the archive."""
    files = archive_files(archive)
    weights = [m for m in files if Path(m.filename).name == WEIGHTS_FILE]
    if len(weights) != 1:
        found = ", ".join(m.filename for m in files[:6]) or "nothing"
        raise ValueError(f"'{name}' should hold one saved model (a folder with model.pt, as save() or scvi-tools' "
                         f"save() writes it), but holds: {found}.")
    folder = Path(weights[0].filename).parent
    return [m for m in files if Path(m.filename).parent == folder
            and Path(m.filename).name in (*MODEL_FILES, DATA_FILE)]
