"""A model trained elsewhere opens as a finished run (issue 22): a scvi-tools folder or a zip of it, on the cells saved
with it or on the session's loaded data (more genes, another order, counts in a layer), read in a bounded reader
process, gives the latent space scvi-tools computed (``tests/data/scvi_tools``, made by scvi-tools 1.4.2), its
AutoZI table, its history; what cannot be opened is refused in words; and the Export page's scvi-tools download is a
folder that opens again as the same model."""

import json
import shutil
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import betainc
import torch

from dashboard import export, model_opening
from dashboard.reading import ReadingService
from dashboard.runs import RunStore
from dashboard.session_folder import SessionFolder
from dashboard.workspace import Workspace
from scvi_core.io import DataLoadError
from scvi_core.model import AUTOZI, SCVI, load_model

FIXTURES = Path(__file__).parent / "data" / "scvi_tools"


@pytest.fixture(scope="module")
def service():
    return ReadingService(memory_bytes=2**30, timeout_s=120)


def _expected(name: str) -> np.ndarray:
    return np.load(FIXTURES / f"{name}_expected.npz")["latent"]


def _zipped(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"{folder.name}_model/{path.name}")
    return target


def _open(service, model, tmp_path, **kwargs) -> tuple[RunStore, str, list[str]]:
    session = tmp_path / "session"
    session.mkdir(exist_ok=True)
    store = RunStore(tmp_path / "runs")
    run_id, notices = service.open_model(model, Path(model).name, session, store, **kwargs)
    assert not list(session.iterdir())  # what the reader wrote is handed over, not left
    return store, run_id, notices


def test_a_scvi_tools_folder_becomes_a_finished_run_with_scvi_tools_latent_space(service, tmp_path):
    store, run_id, notices = _open(service, FIXTURES / "scvi", tmp_path)
    assert notices == []
    status, config = store.read_status(run_id), store.read_config(run_id)
    assert status["state"] == "finished" and status["epochs_done"] == 5 and "scvi-tools" in status["message"]
    assert config["model"] == "SCVI" and config["opened_from"] == {"name": "scvi", "format": "scvi-tools"}
    assert config["setup"] == {"batch_key": "batch", "labels_key": None} and config["model_params"]["n_latent"] == 5
    np.testing.assert_allclose(store.read_latent(run_id), _expected("scvi"), rtol=1e-5, atol=1e-6)
    model = store.load_model(run_id)  # as the results pages open it: this library's folder now
    assert isinstance(model, SCVI)
    np.testing.assert_allclose(model.get_latent_representation(), _expected("scvi"), rtol=1e-5, atol=1e-6)
    assert len(store.read_history(run_id)) == 5 and store.list_runs().loc[0, "state"] == "finished"


def test_a_zipped_autozi_opens_with_its_zero_inflation_table(service, tmp_path):
    archive = _zipped(FIXTURES / "autozi", tmp_path / "my_autozi.zip")
    store, run_id, _ = _open(service, archive, tmp_path)
    table = store.read_zero_inflation(run_id)
    saved = np.load(FIXTURES / "autozi_expected.npz")
    alpha, beta = np.ravel(saved["alpha_posterior"]), np.ravel(saved["beta_posterior"])
    # P(ZI) = q(δ < ½) under scvi-tools' trained Beta(α, β): the regularised incomplete beta function
    p_zi = betainc(alpha, beta, 0.5)
    table = table.set_index("gene").loc[[f"g{i}" for i in range(50)]]
    assert table.attrs and np.allclose(table["alpha_posterior"], alpha, rtol=1e-5)
    np.testing.assert_allclose(table["prob_zero_inflated"], p_zi, rtol=1e-4)  # float32 α, β
    assert store.read_config(run_id)["opened_from"]["name"] == "my_autozi.zip"


def test_on_the_loaded_data_the_model_takes_its_genes_and_finds_the_counts(service, tmp_path):
    saved = ad.read_h5ad(FIXTURES / "scvi" / "adata.h5ad")
    rng = np.random.default_rng(0)
    extra = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, (saved.n_obs, 10)).astype(np.float32)), obs=saved.obs,
                       var={"name": [f"extra{i}" for i in range(10)]})
    extra.var_names = extra.var["name"].astype(str).to_numpy()
    loaded = ad.concat([extra, saved], axis=1, merge="first")[:, rng.permutation(60)].copy()
    loaded.obs = saved.obs.copy()
    loaded.layers["counts"] = loaded.X.copy()
    loaded.X = loaded.X.log1p()  # not counts: the model must be given the layer
    data = tmp_path / "loaded.h5ad"
    loaded.write_h5ad(data)
    store, run_id, notices = _open(service, FIXTURES / "scvi", tmp_path, data=data, counts_place="counts")
    assert any("50 of the loaded data's 60 genes" in n for n in notices)
    assert any("layer 'counts'" in n and "(X)" in n for n in notices)
    np.testing.assert_allclose(store.read_latent(run_id), _expected("scvi"), rtol=1e-5, atol=1e-6)

    without_batch = loaded.copy()
    del without_batch.obs["batch"]
    without_batch.write_h5ad(data)
    with pytest.raises(DataLoadError, match="batches in the obs column 'batch', which the loaded data lack"):
        _open(service, FIXTURES / "scvi", tmp_path, data=data, counts_place="counts")
    loaded[:, 5:].copy().write_h5ad(data)
    with pytest.raises(DataLoadError, match=r"lack \d+ of the model's 50 genes"):
        _open(service, FIXTURES / "scvi", tmp_path, data=data, counts_place="counts")


class Payload:
    """What a crafted model.pt pickles: unpickling it would call os.system, leaving ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (__import__("os").system, (f"touch {self.marker}",))


def test_what_cannot_be_opened_is_refused_in_words_and_nothing_runs(service, tmp_path):
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    torch.save({"model_state_dict": {}, "var_names": Payload(tmp_path / "pwned"), "attr_dict": {}},
               crafted / "model.pt")
    with pytest.raises(DataLoadError, match="names Python objects a scvi-tools model file does not hold"):
        _open(service, crafted, tmp_path)
    assert not (tmp_path / "pwned").exists()
    (crafted / "model.pt").unlink()
    shutil.copy(FIXTURES / "scvi" / "model.pt", crafted / "model.pt")
    with pytest.raises(DataLoadError, match="saved without save_anndata=True"):
        _open(service, crafted, tmp_path)
    data_zip = tmp_path / "data.zip"
    with zipfile.ZipFile(data_zip, "w") as archive:
        archive.write(FIXTURES / "scvi" / "adata.h5ad", "adata.h5ad")
    with pytest.raises(DataLoadError, match="should hold one saved model"):
        _open(service, data_zip, tmp_path)
    assert RunStore(tmp_path / "runs").list_runs().empty and not list((tmp_path / "session").iterdir())


def test_the_workspace_hands_its_loaded_data_over_and_the_run_becomes_current(tmp_path, monkeypatch):
    monkeypatch.setenv("SCVI_DASHBOARD_RUNS_DIR", str(tmp_path / "runs"))
    workspace = Workspace()
    workspace.use_folder(SessionFolder(tmp_path / "sessions"))
    saved = ad.read_h5ad(FIXTURES / "autozi" / "adata.h5ad")
    workspace.load("my cells", saved, [])
    run_id, notices = model_opening.open_as_run(FIXTURES / "autozi", "autozi", workspace, on_loaded_data=True)
    assert workspace.current_run_id == run_id and notices == []
    store = RunStore(tmp_path / "runs")
    assert store.read_config(run_id)["dataset_name"] == "my cells"
    assert isinstance(store.load_model(run_id), AUTOZI)


def test_the_scvi_tools_download_opens_as_the_same_model_and_the_snippet_opens_it(service, tmp_path):
    store, run_id, _ = _open(service, FIXTURES / "scvi", tmp_path)
    model = store.load_model(run_id)
    archive = tmp_path / "download.zip"
    archive.write_bytes(export.scvi_tools_model_zip(model, "scvi_tools_model_x"))
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == ["scvi_tools_model_x/model.pt"]
    again = load_model(archive, store.load_adata(run_id))
    np.testing.assert_allclose(again.get_latent_representation(), _expected("scvi"), rtol=1e-5, atol=1e-6)
    code = export.reproduce_snippet(store.read_config(run_id), store.load_adata(run_id), model_folder="model_x")
    assert "model = SCVI.load('model_x', adata)" in code and ".train(" not in code
    compile(code, "snippet", "exec")
    assert json.loads((store.path(run_id) / "config.json").read_text())["train_params"] == {}
