"""Model folders in scvi-tools' format: opening one saved by scvi-tools 1.x as an SCVI or AUTOZI of this library (the
same latent space, normalised expression and AutoZI posterior of δ, from scvi-tools' own weights), and writing one of
ours as scvi-tools saves it (:func:`to_model_file`), so that it goes on in scvi-tools.

What such a folder holds (``../shared/research/scvi_tools_format.md``): ``model.pt``, a ``torch.save`` of
``{"model_state_dict", "var_names", "attr_dict"}`` (``attr_dict``: the model's init parameters, its registry of the
AnnData, its history, …), and ``adata.h5ad`` when it was saved with the data. ``model.pt`` holds pickled Python
objects (numpy arrays, pandas DataFrames), so it is opened with ``weights_only=True`` and an explicit allow-list of
the types scvi-tools writes (:data:`ALLOWED_GLOBALS`): a file that names anything else is refused before any of it
is unpickled.

The modules are the same networks under other names (:data:`NAMES`); what this library cannot rebuild (another
latent distribution, covariates beyond batch and labels, a size factor, AutoZI's per-cell δ) is refused with what
differs.
"""

from __future__ import annotations

import collections
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import Registry

ALLOWED_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.dict": dict,
    "builtins.bytes": bytes,
    "builtins.slice": slice,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    "numpy._core.multiarray._reconstruct": np._core.multiarray._reconstruct,
    "pandas.core.frame.DataFrame": pd.DataFrame,
    "pandas.core.internals.managers.BlockManager": pd.core.internals.managers.BlockManager,
    "pandas._libs.internals._unpickle_block": pd._libs.internals._unpickle_block,
    "pandas.core.indexes.base._new_Index": pd.core.indexes.base._new_Index,
    "pandas.core.indexes.base.Index": pd.Index,
}
"""The Python objects a scvi-tools 1.4 ``model.pt`` may name besides tensors (numpy arrays and dtypes, plain
containers, the history's DataFrames); numpy's per-type dtype classes (:data:`DTYPE_CLASSES`) are allowed too."""
DTYPE_CLASSES = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]


def _plain_dict(*_factory) -> dict:
    """What a pickled ``collections.defaultdict`` (scvi-tools' registry) is read as: a plain dict with the same items
    (torch's weights-only unpickler fills dicts only)."""
    return {}
"""numpy's dtype classes (``numpy.dtypes.Float32DType``, ``ObjectDType``, …), which a pickled array's dtype is."""

NAMES = [
    ("{e}_encoder.encoder.fc_layers.Layer {i}.0.", "{e}_encoder.trunk.layers.{i}.linear."),
    ("{e}_encoder.encoder.fc_layers.Layer {i}.1.", "{e}_encoder.trunk.layers.{i}.norm."),
    ("{e}_encoder.mean_encoder.", "{e}_encoder.mean."),
    ("{e}_encoder.var_encoder.", "{e}_encoder.log_var."),
    ("decoder.px_decoder.fc_layers.Layer {i}.0.", "decoder.trunk.layers.{i}.linear."),
    ("decoder.px_decoder.fc_layers.Layer {i}.1.", "decoder.trunk.layers.{i}.norm."),
    ("decoder.px_scale_decoder.0.", "decoder.frequency."),
    ("decoder.px_dropout_decoder.", "decoder.dropout_logits."),
    ("decoder.px_r_decoder.", "decoder.log_dispersion."),
    ("alpha_posterior_logit", "alpha_logit"),
    ("beta_posterior_logit", "beta_logit"),
]
"""scvi-tools' state-dict names and this library's (``{e}``: the z or l encoder, ``{i}``: a layer); a name ending in
a dot is the start of several, one without names a whole tensor."""


def _pattern(template: str) -> re.Pattern:
    escaped = re.escape(template).replace(r"\{e\}", "(?P<e>z|l)").replace(r"\{i\}", r"(?P<i>\d+)")
    return re.compile("^" + escaped + ("" if template.endswith(".") else "$"))


def rename(name: str, to_ours: bool = True) -> str:
    """A state-dict name in the other library's words (unchanged where both use it: ``px_r``, the prior logits)."""
    for theirs, ours in NAMES:
        source, target = (theirs, ours) if to_ours else (ours, theirs)
        match = _pattern(source).match(name)
        if match:
            return target.format(**match.groupdict()) + name[match.end():]
    return name


POSTERIOR_LOGITS = ("alpha_logit", "beta_logit")
HISTORY_COLUMNS = tuple(f"{metric}_{split}" for metric in ("elbo", "reconstruction_loss", "kl_local")
                        for split in ("train", "validation"))
"""The per-epoch metrics both libraries record under the same names (scvi-tools: one DataFrame each)."""


def is_scvi_tools_folder(folder: str | Path, prefix: str = "") -> bool:
    """A folder scvi-tools saved: its ``model.pt`` and none of this library's ``config.json``."""
    folder = Path(folder)
    return (folder / f"{prefix}model.pt").is_file() and not (folder / f"{prefix}config.json").exists()


def read_model_file(path: Path) -> dict:
    """``model.pt`` unpickled with only :data:`ALLOWED_GLOBALS` (and tensors); anything else is refused, unread."""
    named = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    known = {*ALLOWED_GLOBALS, "collections.defaultdict", *(f"numpy.dtypes.{c.__name__}" for c in DTYPE_CLASSES)}
    refused = sorted(set(named) - known)
    if refused:
        raise ValueError(f"{path} names Python objects a scvi-tools model file does not hold ({', '.join(refused)}); "
                         "it is not opened, since unpickling them could run code. Save the model again with "
                         "scvi-tools, or open only files you trust.")
    with torch.serialization.safe_globals([*ALLOWED_GLOBALS.values(), *DTYPE_CLASSES,
                                           (_plain_dict, "collections.defaultdict")]):
        saved = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(saved, dict) and {"model_state_dict", "var_names", "attr_dict"} <= set(saved)):
        raise ValueError(f"{path} is not a scvi-tools model file (it lacks model_state_dict, var_names and attr_dict); "
                         "a folder saved by scvi_core opens with format='scvi_core'.")
    return saved


def model_name(saved: dict) -> str:
    return saved["attr_dict"]["registry_"]["model_name"]


def model_arguments(saved: dict, arguments: list[str]) -> dict:
    """This library's arguments for the saved model (``arguments``: those it takes); what it cannot rebuild is
    refused with what differs."""
    init = saved["attr_dict"]["init_params_"]
    given = dict(init.get("non_kwargs", {}))
    extra = {k: v for block in init.get("kwargs", {}).values() for k, v in (block or {}).items()}
    refused = [f"{k}={v!r}" for k, v in extra.items()]
    if given.pop("latent_distribution", "normal") != "normal":
        refused.append("latent_distribution='ln'")
    if given.get("zero_inflation") == "gene-cell":
        refused.append("zero_inflation='gene-cell' (scvi-tools keeps a q(δ) per training cell)")
    refused += [f"{k}={v!r}" for k, v in given.items() if k not in arguments]
    setup = saved["attr_dict"]["registry_"]["setup_args"]
    refused += [f"{k}={setup[k]!r}" for k in ("size_factor_key", "categorical_covariate_keys",
                                             "continuous_covariate_keys") if setup.get(k)]
    if refused:
        raise ValueError(f"This scvi-tools model uses what scvi_core cannot rebuild: {', '.join(refused)}.")
    return given


def registry(saved: dict) -> Registry:
    """Where the counts are and the batch / label categories in scvi-tools' code order."""
    record = saved["attr_dict"]["registry_"]
    fields = record["field_registries"]

    def categories(field: str) -> list[str]:
        state = fields.get(field, {}).get("state_registry", {})
        return [str(c) for c in state.get("categorical_mapping", ["0"])]

    setup = record["setup_args"]
    return Registry(layer=setup.get("layer"), batch_key=setup.get("batch_key"), labels_key=setup.get("labels_key"),
                    batch_categories=categories("batch") if setup.get("batch_key") else ["0"],
                    label_categories=categories("labels") if setup.get("labels_key") else ["0"])


def state_dict(saved: dict, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """scvi-tools' weights under this library's names, for ``module`` built with the same arguments: every tensor
    the module needs, of the same shape (the library size's prior, computed from the data, is kept when scvi-tools
    did not store it); refused with the first difference."""
    renamed = {rename(name): value for name, value in saved["model_state_dict"].items()
               if isinstance(value, torch.Tensor)}  # not pyro's parameter store: empty for these models
    if hasattr(module, "set_posterior_params"):  # scvi-tools' α = σ(logit); ours = scale · σ(logit), scale ≥ 1
        module.set_posterior_params(*(torch.sigmoid(renamed[name]) for name in POSTERIOR_LOGITS))
        renamed |= {name: getattr(module, name).detach().clone() for name in POSTERIOR_LOGITS}
    ours = module.state_dict()
    state = {}
    for name, value in ours.items():
        if name in renamed:
            if renamed[name].shape != value.shape:
                raise ValueError(f"scvi-tools' {name} has shape {tuple(renamed[name].shape)}, scvi_core's "
                                 f"{tuple(value.shape)}: the two architectures differ.")
            state[name] = renamed[name].to(value.dtype)
        elif name in ("library_log_means", "library_log_vars", "prior"):
            state[name] = value
        else:
            raise ValueError(f"The scvi-tools model has no weights for scvi_core's {name}: the two architectures "
                             "differ.")
    return state


def history(saved: dict) -> pd.DataFrame:
    """scvi-tools' per-epoch history (one DataFrame per metric) as one table, named as this library names it."""
    frames = saved["attr_dict"].get("history_") or {}
    columns = {name: frame.iloc[:, 0].to_numpy() for name in HISTORY_COLUMNS
               if isinstance(frame := frames.get(name), pd.DataFrame) and len(frame)}
    if not columns:
        return pd.DataFrame()
    length = min(len(v) for v in columns.values())
    return pd.DataFrame({"epoch": np.arange(1, length + 1), **{k: v[:length] for k, v in columns.items()}})


# ---- writing a model of this library as scvi-tools saves one ---------------------------------------------------------
SCVI_TOOLS_VERSION = "1.4.2"
"""The scvi-tools whose folder layout is written (scvi-tools 1.x reads it)."""
INIT_KWARGS_NAME = {"SCVI": "kwargs", "AUTOZI": "model_kwargs"}


def to_model_file(model) -> dict:
    """What scvi-tools' ``model.pt`` holds for ``model`` (``torch.save`` it): its weights under scvi-tools' names,
    the genes, and the ``attr_dict`` scvi-tools' ``load`` rebuilds the model from."""
    name = type(model).__name__
    params = {**model.params, "latent_distribution": "normal"}
    attributes = {
        "init_params_": {"kwargs": {INIT_KWARGS_NAME[name]: {}}, "non_kwargs": params},
        "registry_": _registry_record(model, name),
        "history_": {column: model.history[[column]].set_index(model.history["epoch"] - 1)
                     for column in HISTORY_COLUMNS if column in model.history},
        "is_trained_": model.is_trained,
        "train_indices_": np.asarray(model.train_indices if model.train_indices is not None else [], dtype=np.int64),
        "validation_indices_": np.asarray(model.validation_indices if model.validation_indices is not None else [],
                                          dtype=np.int64),
        "test_indices_": np.array([], dtype=np.int64),
        "get_normalized_function_name_": "get_normalized_expression",
    }
    return {"model_state_dict": _their_state_dict(model), "var_names": np.array(model.data.gene_names, dtype=object),
            "attr_dict": attributes}


def _registry_record(model, name: str) -> dict:
    """scvi-tools' record of how the AnnData was set up, as its ``setup_anndata`` writes it for these arguments."""
    registry, data = model.registry, model.data

    def categorical(key: str | None, default_key: str, categories: list[str], count: str) -> dict:
        mapping = np.array(categories, dtype=object) if key else np.array([0])
        return {"data_registry": {"attr_name": "obs", "attr_key": default_key},
                "state_registry": {"categorical_mapping": mapping, "original_key": key or default_key},
                "summary_stats": {count: len(categories) if key else 1}}

    fields = {
        "X": {"data_registry": {"attr_name": "layers", "attr_key": registry.layer} if registry.layer else
              {"attr_name": "X", "attr_key": None},
              "state_registry": {"n_obs": data.n_cells, "n_vars": data.n_genes,
                                 "column_names": np.array(data.gene_names, dtype=object)},
              "summary_stats": {"n_vars": data.n_genes, "n_cells": data.n_cells}},
        "batch": categorical(registry.batch_key, "_scvi_batch", registry.batch_categories, "n_batch"),
        "labels": categorical(registry.labels_key, "_scvi_labels", registry.label_categories, "n_labels"),
    }
    setup = {"batch_key": registry.batch_key, "labels_key": registry.labels_key, "layer": registry.layer}
    if name == "SCVI":
        empty = {"data_registry": {}, "state_registry": {}}
        fields |= {"size_factor": {**empty, "summary_stats": {}},
                   "extra_categorical_covs": {**empty, "summary_stats": {"n_extra_categorical_covs": 0}},
                   "extra_continuous_covs": {**empty, "summary_stats": {"n_extra_continuous_covs": 0}}}
        setup |= {"size_factor_key": None, "categorical_covariate_keys": None, "continuous_covariate_keys": None}
    return {"scvi_version": SCVI_TOOLS_VERSION, "model_name": name, "setup_method_name": "setup_anndata",
            "setup_args": setup, "_scvi_uuid": str(uuid.uuid4()), "field_registries": fields}


def _their_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights under scvi-tools' names, with the tensors its modules always hold and this library's leaves out
    when unused (the library encoder with observed sizes, the dispersion and dropout heads) set to inert values."""
    module = model.module
    state = {rename(name, to_ours=False): value.detach().cpu().clone() for name, value in module.state_dict().items()
             if name not in ("library_log_means", "library_log_vars", "prior")}
    if not model.params["use_observed_lib_size"]:
        state |= {"library_log_means": module.library_log_means.cpu()[None], "library_log_vars":
                  module.library_log_vars.cpu()[None]}
    if hasattr(module, "posterior_scale"):  # ours α = scale · σ(logit); scvi-tools' σ(logit) must stay below 1
        alpha, beta = (value.detach().cpu() for value in module.posterior_params())
        if max(float(alpha.max()), float(beta.max())) >= 1:
            raise ValueError("Some genes' q(δ) has α or β ≥ 1, which scvi-tools' AutoZI cannot hold (its α, β are "
                             "sigmoids): this model cannot be saved in scvi-tools' format.")
        state |= {"alpha_posterior_logit": torch.logit(alpha), "beta_posterior_logit": torch.logit(beta)}
        if not module.learn_prior:
            prior = module.prior.cpu()
            state |= {"alpha_prior_logit": torch.logit(prior[0:1]), "beta_prior_logit": torch.logit(prior[1:2])}
    n_genes, n_hidden = model.data.n_genes, model.params["n_hidden"]
    inert = {"l_encoder.encoder.fc_layers.Layer 0.0.weight": torch.zeros(n_hidden, n_genes),
             "l_encoder.encoder.fc_layers.Layer 0.0.bias": torch.zeros(n_hidden),
             "l_encoder.encoder.fc_layers.Layer 0.1.weight": torch.ones(n_hidden),
             "l_encoder.encoder.fc_layers.Layer 0.1.bias": torch.zeros(n_hidden),
             "l_encoder.encoder.fc_layers.Layer 0.1.running_mean": torch.zeros(n_hidden),
             "l_encoder.encoder.fc_layers.Layer 0.1.running_var": torch.ones(n_hidden),
             "l_encoder.encoder.fc_layers.Layer 0.1.num_batches_tracked": torch.tensor(0),
             "l_encoder.mean_encoder.weight": torch.zeros(1, n_hidden), "l_encoder.mean_encoder.bias": torch.zeros(1),
             "l_encoder.var_encoder.weight": torch.zeros(1, n_hidden), "l_encoder.var_encoder.bias": torch.zeros(1),
             "decoder.px_r_decoder.weight": torch.zeros(n_genes, n_hidden),
             "decoder.px_r_decoder.bias": torch.zeros(n_genes),
             "decoder.px_dropout_decoder.weight": torch.zeros(n_genes, n_hidden),
             "decoder.px_dropout_decoder.bias": torch.zeros(n_genes),
             "px_r": torch.zeros(n_genes)}
    return {**inert, **state, "pyro_param_store": {}}
