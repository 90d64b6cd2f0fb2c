"""Models saved by scvi-tools 1.4.2 open as this library's SCVI and AUTOZI, giving what scvi-tools computes from
them, and a model file that names anything beyond what scvi-tools writes is refused before any of it is unpickled.

The fixtures in ``tests/data/scvi_tools/`` were written by scvi-tools 1.4.2 in an environment of its own
(scvi-tools is not a dependency) with ``tests/data/scvi_tools/make_fixtures.py``: SCVI and AUTOZI with
``n_latent=5``, 5 epochs on 200 simulated cells × 50 genes in 2 batches, saved with ``save_anndata=True``;
``<model>_expected.npz`` holds what scvi-tools' own modules compute at each cell's posterior mean in eval mode
(latent mean, normalised expression ρ, θ) and AUTOZI's ``get_alphas_betas()``.
"""

import os
import shutil
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

from scvi_core import AUTOZI, SCVI
from scvi_core.model import _scvi_tools as scvi_tools
from scvi_core.model import load_model

FIXTURES = Path(__file__).parent / "data" / "scvi_tools"


@pytest.mark.parametrize(("name", "model_class"), [("scvi", SCVI), ("autozi", AUTOZI)])
def test_a_scvi_tools_model_gives_what_scvi_tools_computes(name, model_class):
    model = model_class.load(FIXTURES / name)  # no AnnData given: the folder's adata.h5ad
    expected = np.load(FIXTURES / f"{name}_expected.npz")
    assert model.is_trained and model.params["n_latent"] == 5 and model.registry.batch_categories == ["b1", "b2"]
    np.testing.assert_allclose(model.get_latent_representation(), expected["latent"], rtol=1e-5, atol=1e-6)
    rho = model.get_normalized_expression(library_size=1.0, return_numpy=True)
    np.testing.assert_allclose(rho, expected["rho"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(torch.exp(model.module.px_r).detach().numpy(), expected["theta"][0], rtol=1e-5)
    if model_class is AUTOZI:
        alphas_betas = model.get_alphas_betas()
        for key in ("alpha_posterior", "beta_posterior", "alpha_prior", "beta_prior"):
            np.testing.assert_allclose(np.ravel(alphas_betas[key]), np.ravel(expected[key]), rtol=1e-5)
    assert len(model.history) == 5 and model.history["elbo_train"].notna().all()
    assert len(model.train_indices) + len(model.validation_indices) == 200


def test_the_same_cells_given_or_format_forced_and_the_wrong_class_refused():
    adata = ad.read_h5ad(FIXTURES / "scvi" / "adata.h5ad")
    model = SCVI.load(FIXTURES / "scvi", adata, format="scvi-tools")
    np.testing.assert_allclose(model.get_latent_representation(),
                               np.load(FIXTURES / "scvi_expected.npz")["latent"], rtol=1e-5, atol=1e-6)
    table = model.differential_expression(groupby="batch", n_samples=200)
    assert len(table) == 2 * 50 and table["proba_de"].between(0, 1).all()
    with pytest.raises(ValueError, match="holds a scvi-tools AUTOZI model, not SCVI"):
        SCVI.load(FIXTURES / "autozi")
    with pytest.raises(ValueError, match="genes do not match"):
        SCVI.load(FIXTURES / "scvi", adata[:, ::-1].copy())


def test_a_folder_of_this_library_forced_as_scvi_tools_says_what_it_is(tmp_path):
    adata = ad.read_h5ad(FIXTURES / "scvi" / "adata.h5ad")
    SCVI.setup_anndata(adata, batch_key="batch")
    SCVI(adata, n_latent=3).save(tmp_path / "ours")
    with pytest.raises(ValueError, match="not a scvi-tools model file .* format='scvi_core'"):
        SCVI.load(tmp_path / "ours", adata, format="scvi-tools")


def test_a_model_file_naming_other_python_objects_is_refused_unread(tmp_path):
    """A crafted ``model.pt`` whose pickle would run a shell command: refused, naming what it holds, and the
    command never ran."""
    marker = tmp_path / "it ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch '{marker}'",)

    folder = tmp_path / "crafted"
    shutil.copytree(FIXTURES / "scvi", folder)
    saved = scvi_tools.read_model_file(folder / "model.pt")
    torch.save({**saved, "attr_dict": {**saved["attr_dict"], "run_name_": Payload()}}, folder / "model.pt")
    with pytest.raises(ValueError, match=r"names Python objects .*system.* it is not opened"):
        SCVI.load(folder)
    assert not marker.exists()


def test_what_cannot_be_rebuilt_is_refused_with_what_differs(tmp_path):
    folder = tmp_path / "ln"
    shutil.copytree(FIXTURES / "scvi", folder)
    saved = scvi_tools.read_model_file(folder / "model.pt")
    saved["attr_dict"]["init_params_"]["non_kwargs"]["latent_distribution"] = "ln"
    saved["attr_dict"]["init_params_"]["kwargs"] = {"kwargs": {"encode_covariates": True}}
    torch.save(saved, folder / "model.pt")
    with pytest.raises(ValueError, match=r"cannot rebuild: encode_covariates=True, latent_distribution='ln'"):
        SCVI.load(folder)


@pytest.mark.parametrize(("name", "model_class"), [("scvi", SCVI), ("autozi", AUTOZI)])
def test_saved_in_scvi_tools_format_the_files_are_laid_out_as_scvi_tools_lays_them(tmp_path, name, model_class):
    """Ours saved with ``format="scvi-tools"``: the file scvi-tools' own model of the same architecture has — the
    same weights' names and shapes, the same record of the setup and init parameters — and it opens back here with
    the same latent and posterior of δ. (That scvi-tools 1.4.2 opens it, with the same latent, is
    ``benchmarks/scvi_tools_roundtrip.py``'s check: it needs a scvi-tools install.)"""
    adata = ad.read_h5ad(FIXTURES / name / "adata.h5ad")
    model_class.setup_anndata(adata, batch_key="batch")
    model = model_class(adata, n_latent=5)
    model.train(max_epochs=2, batch_size=64)
    model.save(tmp_path / "saved", format="scvi-tools", save_anndata=True, prefix="pbmc_")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["pbmc_adata.h5ad", "pbmc_model.pt"]
    ours = scvi_tools.read_model_file(tmp_path / "saved" / "pbmc_model.pt")
    theirs = scvi_tools.read_model_file(FIXTURES / name / "model.pt")
    assert set(ours) == set(theirs) and list(ours["var_names"]) == list(theirs["var_names"])
    shapes = {k: tuple(v.shape) for k, v in ours["model_state_dict"].items() if isinstance(v, torch.Tensor)}
    assert shapes == {k: tuple(v.shape) for k, v in theirs["model_state_dict"].items() if isinstance(v, torch.Tensor)}
    for key in ("init_params_", "registry_"):
        assert _shape_of(ours["attr_dict"][key]) == _shape_of(theirs["attr_dict"][key]), key
    assert ours["attr_dict"]["init_params_"] == theirs["attr_dict"]["init_params_"]
    back = model_class.load(tmp_path / "saved", prefix="pbmc_")
    np.testing.assert_array_equal(back.get_latent_representation(), model.get_latent_representation())
    if model_class is AUTOZI:
        for key, value in model.get_alphas_betas().items():
            np.testing.assert_allclose(back.get_alphas_betas()[key], value, rtol=1e-6)


def _shape_of(record):
    """The nested keys of a record, and the type of each leaf (values differ from model to model)."""
    if isinstance(record, dict):
        return {key: _shape_of(value) for key, value in record.items() if key != "_scvi_uuid"}
    return type(record).__name__


def _zip_folder(folder: Path, target: Path, inside: str) -> Path:
    """``folder``'s files zipped inside ``inside/``, with the litter archivers add (a macOS fork, a hidden file)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in folder.iterdir():
            archive.write(path, f"{inside}/{path.name}")
        archive.writestr(f"__MACOSX/{inside}/._model.pt", b"\0" * 10)
        archive.writestr(f"{inside}/.DS_Store", b"\0" * 10)
    return target


@pytest.mark.parametrize(("name", "model_class"), [("scvi", SCVI), ("autozi", AUTOZI)])
def test_load_model_opens_either_class_from_a_folder_or_a_zip_of_it(tmp_path, name, model_class):
    expected = np.load(FIXTURES / f"{name}_expected.npz")["latent"]
    archive = _zip_folder(FIXTURES / name, tmp_path / f"{name}.zip", inside=f"my_{name}_model")
    for source in (FIXTURES / name, archive, archive.read_bytes()):
        model = load_model(source)
        assert type(model) is model_class
        np.testing.assert_allclose(model.get_latent_representation(), expected, rtol=1e-5, atol=1e-6)
    two = tmp_path / "two.zip"
    shutil.copy(archive, two)
    with zipfile.ZipFile(two, "a") as extra:
        extra.write(FIXTURES / name / "model.pt", "another/model.pt")
    with pytest.raises(ValueError, match="should hold one saved model"):
        load_model(two)
    with pytest.raises(ValueError, match="not a readable .zip"):
        load_model(b"PK\x03\x04 not really a zip")
