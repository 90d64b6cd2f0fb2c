"""What a user takes home from a run, in the forms scanpy and scvi_core users expect.

- An ``.h5ad`` of the prepared data with the results written back where scanpy looks for them:
  ``obsm["X_scVI"]`` (latent), ``obsm["X_umap"]``, ``obs["leiden"]``, one boolean ``obs["group_<name>"]`` per saved
  group, the zero-inflation table as ``var["autozi_<column>"]`` columns (AutoZI's posterior and the counts; the NB
  vs ZINB check as ``var["nb_zinb_check_<column>"]``; one set per batch / label in those modes) with what made each
  column in ``uns["autozi_zero_inflation"]["methods"]``, and in ``uns["scvi_dashboard"]`` the run id, its
  configuration (as JSON: h5ad cannot store None) and the package versions it ran with.
- A differential-expression answer (:mod:`dashboard.de_answers`): its whole table as ``uns["scvi_de"]`` (one row
  per gene and comparison, the gene in a column, its ``method`` column naming the method), the question and
  settings (``method`` included) in ``uns["scvi_de_params"]``, and a
  scanpy-shaped ``uns["rank_genes_groups"]`` so ``sc.get.rank_genes_groups_df`` and
  ``sc.pl.rank_genes_groups_dotplot`` work on the file (see :func:`rank_genes_groups` for what its fields hold).
- A zip of the trained model (``config.json``, ``model.pt``, ``history.csv``) that
  :func:`scvi_core.model.load_model` turns back into a model (:func:`scvi_core.model.model_zip_bytes`), and one in
  scvi-tools' layout (:func:`scvi_tools_model_zip`), a folder ``scvi.model.SCVI.load(folder, adata)`` opens, so that
  the model goes on in scvi-tools (scANVI, query mapping).
- A Python snippet that reproduces the run with ``scvi_core`` (for a run opened from a saved model: that opens it),
  so the dashboard is never a dead end.
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from scvi_core.data import ON_DISK_KEY, SETUP_KEY, registry_of
from scvi_core.de import METHOD_TITLES, REST, call_column, is_up, log_odds, method_of, posterior_qvalues, sort_groups
from scvi_core.embedding import Embedding
from scvi_core.model import model_zip_bytes
from scvi_core.zi import CHECK_PREFIX, group_column

from .de_answers import Answer
from .groups import obs_column
from .model_opening import opened_from

PACKAGES = ("torch", "numpy", "scipy", "pandas", "anndata", "scanpy", "umap-learn", "leidenalg", "igraph",
            "streamlit", "plotly")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (missing ones are left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def zero_inflation_var_name(column: str) -> str:
    """``autozi_<column>`` for AutoZI's posterior and the counts; the NB vs ZINB check keeps its own prefix."""
    return column if column.startswith(CHECK_PREFIX) else f"autozi_{column}"


def zero_inflation_var_columns(table: pd.DataFrame, gene_names, group_key: str | None) -> pd.DataFrame:
    """The zero-inflation table as ``var`` columns (:func:`zero_inflation_var_name`), aligned to ``gene_names``;
    in per-batch / per-label modes one set per group, ``<name>_<group>``."""
    values = [c for c in table.columns if c not in ("gene", group_key)]
    if group_key is None or group_key not in table.columns:
        wide = table.set_index("gene")[values].rename(columns=zero_inflation_var_name)
    else:
        wide = table.pivot(index="gene", columns=group_key, values=values)
        wide.columns = [f"{zero_inflation_var_name(column)}_{group}" for column, group in wide.columns]
    return wide.reindex(pd.Index(gene_names, dtype=str))


def zero_inflation_uns(table: pd.DataFrame) -> dict:
    """What made the exported zero-inflation columns: the table's ``attrs`` (prior, threshold, posterior) with
    ``methods`` keyed by the ``var`` column prefix each method wrote."""
    attrs = {k: v for k, v in table.attrs.items() if k != "methods"}
    methods = {zero_inflation_var_name(c): m for c, m in table.attrs.get("methods", {}).items()}
    return attrs | {"methods": methods}


def annotated_adata(adata: ad.AnnData, latent: np.ndarray, run_id: str, config: dict,
                    embedding: Embedding | None = None, groups: dict[str, np.ndarray] | None = None,
                    zero_inflation: pd.DataFrame | None = None, differential: Answer | None = None) -> ad.AnnData:
    """A copy of the run's prepared data with every result written back (see the module docstring).
    ``embedding`` must cover every cell; ``zero_inflation`` is the run's table (one set of columns per batch / label
    in those modes); ``differential`` is a stored differential-expression answer. Data opened on disk
    (:func:`~scvi_core.io.open_on_disk`) are written without X: an atlas's counts stay in its file
    (``uns["scvi_dashboard"]["counts_file"]``), the same cells in the same order, and the export holds the results."""
    on_disk = adata.uns.get(ON_DISK_KEY)
    out = adata.copy() if on_disk is None else ad.AnnData(obs=adata.obs.copy(), var=adata.var.copy(),
                                                          uns={SETUP_KEY: dict(adata.uns[SETUP_KEY])})
    out.obsm["X_scVI"] = np.asarray(latent, dtype=np.float32)
    if embedding is not None:
        if len(embedding.cells) != out.n_obs:
            raise ValueError("Export the embedding of every cell, not of a group.")
        out.obsm["X_umap"] = embedding.umap
        out.obs["leiden"] = pd.Categorical(embedding.leiden, categories=sorted(set(embedding.leiden), key=int))
    for name, cells in (groups or {}).items():
        member = np.zeros(out.n_obs, dtype=bool)
        member[cells] = True
        out.obs[obs_column(name)] = member
    if zero_inflation is not None:
        columns = zero_inflation_var_columns(zero_inflation, out.var_names, group_column(zero_inflation))
        for column in columns:
            out.var[column] = columns[column].to_numpy()
        out.uns["autozi_zero_inflation"] = zero_inflation_uns(zero_inflation)
    if differential is not None:
        add_differential_expression(out, differential)
    out.uns["scvi_dashboard"] = {"run_id": run_id, "config": json.dumps(config, default=str),
                                 "versions": package_versions()}
    if on_disk:
        out.uns["scvi_dashboard"]["counts_file"] = on_disk["path"]
    return out


def de_note(method: str) -> str:
    """What each field of the exported ``rank_genes_groups`` holds, for an answer of ``method``."""
    return (f"{METHOD_TITLES[method]} differential expression (Bayesian, method={method!r} of "
            "scvi_core.de), not a frequentist test. names: genes ranked by scores. scores: the "
            "natural-log posterior odds of |log2 fold change| >= delta, signed by the direction of the larger "
            "posterior tail (P(LFC >= delta) against P(LFC <= -delta)) and 0 where the posterior favours no "
            "difference (P(DE) < 0.5). logfoldchanges: posterior mean log2 fold change. pvals: the posterior "
            "probability of NOT being differentially expressed (proba_not_de), not a p-value. pvals_adj: the "
            "posterior expected false discovery rate of calling this gene and every gene with a higher P(DE); the "
            "genes called DE are those with pvals_adj <= fdr_target. pts / pts_rest: fraction of cells with a count "
            "in the group / in group 2.")


def de_groupby_name(obs: pd.DataFrame, answer: Answer) -> str:
    """The obs column that holds the groups an answer compared: the column it came from when that still holds
    exactly these groups (e.g. ``leiden``, ``cell_type``), else ``de_groups`` (written from the answer's labels)."""
    labels = np.asarray(answer.labels, dtype=str)
    column = answer.question.groupby
    if column in obs.columns:
        values = obs[column]
        if np.array_equal(np.where(values.isna(), "", values.astype(str)).astype(str), labels):
            return column
    return "de_groups"


def de_groupby_column(out: ad.AnnData, answer: Answer) -> str:
    """:func:`de_groupby_name`, writing ``obs["de_groups"]`` when it is that."""
    column = de_groupby_name(out.obs, answer)
    if column == "de_groups":
        labels = np.asarray(answer.labels, dtype=str)
        out.obs[column] = pd.Categorical(np.where(labels == "", None, labels), categories=sort_groups(labels))
    return column


def rank_genes_groups(table: pd.DataFrame, groupby: str, reference: str, params: dict | None = None) -> dict:
    """A differential-expression table as scanpy's ``uns["rank_genes_groups"]``: one record field per group 1 of the
    table's comparisons, genes ranked by score (most convincingly higher in the group first, most convincingly
    lower last). What each field holds is stated in :func:`de_note` (``params["note"]``): the scores and
    "p-values" are posterior quantities, labelled as such."""
    fields = {name: [] for name in ("names", "scores", "logfoldchanges", "pvals", "pvals_adj")}
    pts, pts_rest, groups = {}, {}, []
    for comparison in pd.unique(table["comparison"]):
        block = table[table["comparison"] == comparison]
        group = str(block["group1"].iloc[0])
        lfc = block["lfc_mean"].to_numpy(dtype=float)
        evidence = np.maximum(log_odds(block["proba_de"].to_numpy(dtype=float)), 0.0)
        scores = np.where(is_up(block), evidence, -evidence)
        order = np.lexsort((-lfc, -scores))  # by score, ties (e.g. no evidence) by fold change
        fields["names"].append(block.index.to_numpy(dtype=str)[order].astype(object))
        fields["scores"].append(scores[order].astype(np.float32))
        fields["logfoldchanges"].append(lfc[order].astype(np.float32))
        fields["pvals"].append(block["proba_not_de"].to_numpy(dtype=np.float64)[order])
        fields["pvals_adj"].append(posterior_qvalues(block).to_numpy(dtype=np.float64)[order])
        genes = block.index.astype(str)
        pts[group] = pd.Series(block["non_zeros_proportion1"].to_numpy(), index=genes)
        pts_rest[group] = pd.Series(block["non_zeros_proportion2"].to_numpy(), index=genes)
        groups.append(group)
    out = {key: np.rec.fromarrays(values, names=groups) for key, values in fields.items()}
    out["pts"], out["pts_rest"] = pd.DataFrame(pts), pd.DataFrame(pts_rest)
    method = method_of(table)
    out["params"] = {"groupby": groupby, "reference": reference, "method": f"scvi_core.de:{method}",
                     "use_raw": False, "corr_method": "posterior expected FDR", "note": de_note(method),
                     **(params or {})}
    return out


def add_differential_expression(out: ad.AnnData, answer: Answer) -> None:
    """Write a stored answer into ``out`` (see the module docstring): ``uns["scvi_de"]``, ``uns["scvi_de_params"]``,
    ``uns["rank_genes_groups"]``, ``uns["dendrogram_<groupby>"]`` (on the latent space) and, when needed,
    ``obs["de_groups"]``."""
    table = answer.table
    groupby = de_groupby_column(out, answer)
    settings = {k: v for k, v in vars(answer.settings).items()}
    question = {k: ("" if v is None else v) for k, v in vars(answer.question).items()}
    reference = answer.question.group2 or REST
    params = {"delta": settings["delta"], "fdr_target": settings["fdr_target"], "call_column": call_column(table)}
    out.uns["rank_genes_groups"] = rank_genes_groups(table, groupby, reference, params)
    if "X_scVI" in out.obsm and len(sort_groups(answer.labels)) > 1:
        import scanpy as sc  # imported here: it takes seconds

        # The group order of scanpy's marker plots, from the groups' similarity in the latent space (scanpy would
        # otherwise run a PCA of the raw counts, or fail on a sparse X of < 50 genes).
        sc.tl.dendrogram(out, groupby=groupby, use_rep="X_scVI")
    out.uns["scvi_de"] = table.rename_axis("gene").reset_index()
    out.uns["scvi_de_params"] = {"question": question, "settings": settings, "title": answer.question.title(),
                                 "groupby": groupby, "computed": answer.meta.get("created", ""),
                                 "note": de_note(answer.settings.method)}


def counts_file(adata: ad.AnnData) -> str | None:
    """The file whose counts an export written without X points to (data opened on disk), or None."""
    return adata.uns.get(ON_DISK_KEY, {}).get("path")


def cells_table(annotated: ad.AnnData) -> pd.DataFrame:
    """One row per cell of an :func:`annotated_adata`: its obs columns, UMAP coordinates and latent coordinates."""
    table = annotated.obs.copy()
    for key, prefix in (("X_umap", "UMAP"), ("X_scVI", "scVI")):
        if key in annotated.obsm:
            for i, column in enumerate(np.asarray(annotated.obsm[key]).T, start=1):
                table[f"{prefix}_{i}"] = column
    return table.rename_axis("cell").reset_index()


def h5ad_bytes(adata: ad.AnnData) -> bytes:
    """The AnnData as the bytes of an ``.h5ad`` file (compressed), for a download button."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.h5ad"
        adata.write_h5ad(path, compression="gzip")
        return path.read_bytes()


def scvi_tools_model_zip(model, folder: str) -> bytes:
    """``model`` saved as scvi-tools saves one (``model.pt`` only: the data are the exported .h5ad), zipped inside
    ``folder`` so that it unzips to the folder ``scvi.model.SCVI.load(folder, adata)`` expects."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, format="scvi-tools")
        return model_zip_bytes(tmp, folder)


def reproduce_snippet(config: dict, adata: ad.AnnData, data_file: str = "scvi_dashboard_export.h5ad",
                      differential: Answer | None = None, de_groupby: str | None = None,
                      model_folder: str = "model") -> str:
    """Python code that trains the same model on the exported data with ``scvi_core``: the run's model, settings and
    training parameters, and the registration (counts layer, batch and label keys) recorded in ``adata``; for a run
    opened from a saved model (trained elsewhere, so nothing here says how), the code that opens it from
    ``model_folder`` (the model download, unzipped). With ``differential`` (and the obs column ``de_groupby`` that
    holds its groups in the export), the call that asks the same differential-expression question."""
    model = config.get("model", "SCVI")
    registry = registry_of(adata)
    setup = {k: v for k, v in (("layer", registry.layer), ("batch_key", registry.batch_key),
                                ("labels_key", registry.labels_key)) if v is not None}
    on_disk = adata.uns.get(ON_DISK_KEY)
    if on_disk is None:
        read = f"adata = ad.read_h5ad({data_file!r})  # raw counts in X, as the dashboard prepared them"
    elif "layer" not in on_disk:  # the export holds no counts: train on the file itself, read chunk by chunk
        read = f"adata = ad.read_h5ad({on_disk['path']!r}, backed='r')  # the counts stay on disk"
    else:
        read = (f"adata, _ = scvi_core.io.open_on_disk({on_disk['path']!r}, layer={on_disk['layer']!r})"
                "  # the counts stay on disk")
    source = opened_from(config)
    if source:
        build = [f"model = {model}.load({model_folder!r}, adata)  # opened from {source['name']!r} "
                 f"({source['format']}), trained elsewhere"]
    else:
        model_params, train_params = config.get("model_params") or {}, config.get("train_params") or {}
        build = [f"{model}.setup_anndata(adata{''.join(f', {k}={v!r}' for k, v in setup.items())})",
                 f"model = {model}(adata{''.join(f', {k}={v!r}' for k, v in model_params.items())})",
                 f"model.train({', '.join(f'{k}={v!r}' for k, v in train_params.items())})"]
    lines = [
        "import anndata as ad",
        *(["import scvi_core.io"] if on_disk and "layer" in on_disk else []),
        f"from scvi_core import {model}",
        "",
        read,
        *build,
        'adata.obsm["X_scVI"] = model.get_latent_representation()',
    ]
    if model == "AUTOZI":
        lines.append("table = model.get_zero_inflation_table()  # AutoZI's P(ZI) = q(δ < ½), its call, and the "
                     "NB vs ZINB check per gene")
    if differential is not None:
        question, settings = differential.question, differential.settings
        groups = ""
        if question.kind == "pair":
            groups = f", group1={question.group1!r}" + (f", group2={question.group2!r}" if question.group2 else "")
        lines.append(
            f"de = model.differential_expression(groupby={de_groupby or question.groupby!r}{groups}, "
            f"method={settings.method!r}, delta={settings.delta!r}, fdr_target={settings.fdr_target!r}, "
            f"batch_correction={settings.batch_correction!r}, n_samples={settings.n_samples!r}, "
            f"max_cells_per_group={settings.max_cells_per_group!r}, seed={settings.seed!r})  # as uns['scvi_de']")
    lines.append('model.save("my_model")  # reload with ' + f'{model}.load("my_model", adata)')
    return "\n".join(lines) + "\n"
