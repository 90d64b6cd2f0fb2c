"""The run the results pages show, its data loaded once per server, and what is kept with it.

Why shared: Latent space, Zero-inflation, Differential expression and Export all show one finished run — the one
just trained (``Workspace.current_run_id``) or any finished / stopped run reopened from the runs directory, e.g.
after a server restart — and they need the same data, model and UMAP. Loading them once per run (Streamlit caches)
and the UMAP once per run and parameters (on disk, :mod:`dashboard.embeddings`) keeps page switches instant. What is
kept with a run (embeddings, groups, DE answers) is read and written through :class:`dashboard.runs.RunStore`'s
places for it; this module only adds Streamlit's caches and progress.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import de_answers, embeddings, groups, settings
from dashboard.runs import RunStore
from dashboard.services import service_for
from scvi_core.data import counts_per_cell, get_counts, registry_of
from scvi_core.embedding import Embedding, EmbeddingParams
from scvi_core.zi import DEFAULT_MIN_LOG10_BF, GeneDetail, apply_threshold, gene_detail

SHOWABLE = ("finished", "stopped", "interrupted")
EMBEDDING_PARAMS = "embedding_params"  # session keys (not widget keys, so they survive page switches)
ZI_DECISION = "zi_decision"
DE_SHOWN = "de_shown"  # (run id, key) of the differential-expression answer last shown, offered first by Export


def store() -> RunStore:
    return RunStore(settings.runs_dir())


def _label(row) -> str:
    epochs = f"{row.epochs} epoch{'s' if row.epochs != 1 else ''}"
    return f"{row.run_id} · {row.model} · {row.dataset or 'unnamed data'} · {row.state}, {epochs}"


def choose_run() -> str | None:
    """Show the run picker and return the chosen run id, or None (after saying why) when no run has results.
    The default is the workspace's current run; picking another makes it the current run."""
    workspace = st.session_state["workspace"]
    runs = service_for(settings.runs_dir()).list_runs()
    current = workspace.current_run_id
    states = dict(zip(runs["run_id"], runs["state"]))
    if current in states and states[current] not in SHOWABLE:
        st.info(f"Run {current} is {states[current]}: its results appear here once it finishes. "
                "Meanwhile you can look at an earlier run.")
    done = runs[runs["state"].isin(SHOWABLE)]
    done = done[[store().has_model(run_id) for run_id in done["run_id"]]]
    if done.empty:
        st.info("No finished training run yet: train a model first (runs are kept in "
                f"{settings.runs_dir()}, so finished ones are offered here after a restart too).")
        st.page_link("pages/3_training.py", label="Go to Training", icon=":material/model_training:")
        return None
    labels = {row.run_id: _label(row) for row in done.itertuples()}
    ids = list(labels)

    def make_current():
        workspace.current_run_id = st.session_state["results_run"]

    chosen = st.selectbox("Run", ids, index=ids.index(current) if current in ids else 0, key="results_run",
                          format_func=labels.get, on_change=make_current,
                          help="Any finished or stopped run of this server's runs directory.")
    return chosen


def page(title: str):
    """The opening of every results page: its title, the run picker, and the run's data. ``(None, None)`` when there
    is no run to show (the picker has said why)."""
    st.title(title)
    run_id = choose_run()
    return (None, None) if run_id is None else (run_id, adata(run_id))


@st.cache_resource(max_entries=2, show_spinner="Loading the run's data…")
def run_adata(root: str, run_id: str):
    """The run's prepared AnnData, shared by every session: never modify it (copy first)."""
    return RunStore(root).load_adata(run_id)


@st.cache_resource(max_entries=2, show_spinner="Loading the trained model…")
def run_model(root: str, run_id: str):
    return RunStore(root).load_model(run_id, run_adata(root, run_id))


def adata(run_id: str):
    return run_adata(str(store().root), run_id)


def model(run_id: str):
    return run_model(str(store().root), run_id)


def registry(run_id: str):
    """Where the run's counts are and its batch / label keys."""
    return registry_of(adata(run_id))


@st.cache_data(max_entries=32, show_spinner="Decoding the gene's denoised expression for every cell…")
def _denoised(root: str, run_id: str, gene: str) -> np.ndarray:
    return run_model(root, run_id).get_normalized_expression(gene_list=[gene], library_size=1e4, return_numpy=True)[:, 0]


def denoised(run_id: str, gene: str) -> np.ndarray:
    """A gene's normalised expression from the model (per 10,000 counts) in every cell, decoded at each cell's
    posterior mean; cached, so the Latent space and Differential expression pages share it."""
    return _denoised(str(store().root), run_id, gene)


@st.cache_data(max_entries=8, show_spinner="Decoding the markers' expression in a sample of cells…")
def _cells_expression(root: str, run_id: str, cells: tuple, genes: tuple) -> pd.DataFrame:
    values = run_model(root, run_id).get_normalized_expression(indices=np.asarray(cells), gene_list=list(genes),
                                                               library_size=1e4, return_numpy=True)
    return pd.DataFrame(values, columns=list(genes))


def cells_expression(run_id: str, cells, genes) -> pd.DataFrame:
    """Denoised expression (per 10,000 counts) of ``genes`` in ``cells``, rows in the order of ``cells``."""
    return _cells_expression(str(store().root), run_id, tuple(int(c) for c in cells), tuple(genes))


@st.cache_data(max_entries=32, show_spinner="Reading the counts of every cell…")
def _counts(root: str, run_id: str, gene: str | None) -> np.ndarray:
    data = run_adata(root, run_id)
    column = None if gene is None else data.var_names.get_loc(gene)
    return counts_per_cell(get_counts(data, registry_of(data).layer), column)


def counts(run_id: str, gene: str | None = None) -> np.ndarray:
    """Each cell's total count, or its raw count of ``gene``; cached, since counts on disk take one read of the
    whole file."""
    return _counts(str(store().root), run_id, gene)


def config(run_id: str) -> dict:
    return store().read_config(run_id)


def configure_on_run_data(run_id: str, model_config: dict) -> None:
    """Go to the Model page with ``model_config`` set up on the data this run trained on."""
    workspace = st.session_state["workspace"]
    workspace.use_run_data(config(run_id).get("dataset_name") or f"run {run_id}", adata(run_id))
    workspace.model_config = model_config
    st.switch_page("pages/2_model.py")


# ---- UMAP and Leiden clusters --------------------------------------------------------------------------------------
def embedding_params() -> EmbeddingParams:
    return st.session_state.get(EMBEDDING_PARAMS, EmbeddingParams())


def set_embedding_params(n_neighbors: int, min_dist: float, resolution: float) -> None:
    """The neighbours, UMAP and Leiden settings of this session, for every results page."""
    st.session_state[EMBEDDING_PARAMS] = EmbeddingParams(n_neighbors, min_dist, resolution)


def embedding_is_kept(run_id: str) -> bool:
    """Whether the UMAP of every cell at the session's parameters is kept already (no computing on showing it)."""
    return embeddings.cache_path(store().embeddings_dir(run_id), embedding_params(), None,
                                 adata(run_id).n_obs).exists()


def run_embedding(run_id: str, cells: np.ndarray | None = None) -> Embedding:
    """UMAP and Leiden clusters of the run (or of ``cells``) at the session's parameters; computed at most once
    per run, cells and parameters, with the step being computed shown while it runs."""
    folder, latent, params = store().embeddings_dir(run_id), store().read_latent(run_id), embedding_params()
    if embeddings.cache_path(folder, params, cells, latent.shape[0]).exists():
        return embeddings.cached(folder, latent, params, cells)
    n = latent.shape[0] if cells is None else len(cells)
    with st.status(f"Computing neighbours, UMAP and clusters of {n:,} cells (once per run and settings)…") as status:
        result = embeddings.cached(folder, latent, params, cells, progress=lambda message: status.update(label=message))
        status.update(label=f"UMAP and {len(set(result.leiden))} Leiden clusters of {n:,} cells computed.",
                      state="complete")
    return result


def leiden(run_id: str) -> np.ndarray:
    """Leiden cluster of every cell, at the Latent space page's settings (computed once per run and settings)."""
    return np.asarray(run_embedding(run_id).leiden, dtype=str)


# ---- groups and differential-expression answers kept with the run --------------------------------------------------
def saved_groups(run_id: str) -> dict[str, np.ndarray]:
    return groups.read_groups(store().groups_file(run_id))


def de_folder(run_id: str):
    return store().de_dir(run_id)


def kept_answers(run_id: str) -> list[dict]:
    """The metadata of every differential-expression answer kept with the run, newest first."""
    return de_answers.saved(de_folder(run_id))


@st.cache_data(max_entries=8, show_spinner=False)
def _stored_answer(folder: str, key: str) -> de_answers.Answer:
    return de_answers.load(folder, key)


def kept_answer_key(run_id: str, question, settings, labels) -> str | None:
    """The key of the answer kept for exactly this question, settings and groups of cells, or None."""
    return de_answers.stored_key(de_folder(run_id), question, settings, labels)


def stored_answer(run_id: str, key: str) -> de_answers.Answer:
    """Read once per answer, not on every rerun (a key names one immutable answer)."""
    return _stored_answer(str(de_folder(run_id)), key)


# ---- zero inflation -------------------------------------------------------------------------------------------------
def zi_decision() -> tuple[float, float]:
    """The threshold on P(ZI) and the evidence needed for a call, as last set on the Zero-inflation page."""
    return st.session_state.get(ZI_DECISION, (0.5, DEFAULT_MIN_LOG10_BF))


def zero_inflation_table(run_id: str) -> pd.DataFrame | None:
    """The run's saved zero-inflation table with the calls at the session's threshold (None for scVI runs)."""
    table = store().read_zero_inflation(run_id)
    return None if table is None else apply_threshold(table, *zi_decision())


@st.cache_data(max_entries=64, show_spinner="Computing the gene's expected counts…")
def _gene_detail(root: str, run_id: str, row: tuple) -> GeneDetail:
    return gene_detail(run_model(root, run_id), dict(row))


def zi_gene_detail(run_id: str, row: tuple) -> GeneDetail:
    """Why AutoZI and the check call one gene what they do; cached per run and table row (gene, group, α, β, the
    check's fits), as the decoder's pass over the cells is the slow part."""
    return _gene_detail(str(store().root), run_id, row)

