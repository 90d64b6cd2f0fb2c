"""Opening a model folder saved by scvi-tools 1.x as an SCVI or AUTOZI of this library: the same latent space,
normalised expression and AutoZI posterior of δ, from scvi-tools' own weights.

What such a folder holds (``../shared/research/scvi_tools_format.md``): ``model.pt``, a ``torch.save`` of
``{"model_state_dict", "var_names", "attr_dict"}`` (``attr_dict``: the model's init parameters, its registry of the
AnnData, its history, …), and ``adata.h5ad`` when it was saved with the data. ``model.pt`` holds pickled Python
objects (numpy arrays, pandas DataFrames), so it is opened with ``weights_only=True`` and an explicit allow-list of
the types scvi-tools writes (:data:`ALLOWED_GLOBALS`): a file that names anything else is refused before any of it
is unpickled.

The modules are the same networks under other names (:data:`RENAMES`); what this library cannot rebuild (another
latent distribution, covariates beyond batch and labels, a size factor, AutoZI's per-cell δ) is refused with what
differs.
"""

from __future__ import annotations

import collections
import re
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

RENAMES = [
    (r"^(z|l)_encoder\.encoder\.fc_layers\.Layer (\d+)\.0\.", r"\1_encoder.trunk.layers.\2.linear."),
    (r"^(z|l)_encoder\.encoder\.fc_layers\.Layer (\d+)\.1\.", r"\1_encoder.trunk.layers.\2.norm."),
    (r"^(z|l)_encoder\.mean_encoder\.", r"\1_encoder.mean."),
    (r"^(z|l)_encoder\.var_encoder\.", r"\1_encoder.log_var."),
    (r"^decoder\.px_decoder\.fc_layers\.Layer (\d+)\.0\.", r"decoder.trunk.layers.\1.linear."),
    (r"^decoder\.px_decoder\.fc_layers\.Layer (\d+)\.1\.", r"decoder.trunk.layers.\1.norm."),
    (r"^decoder\.px_scale_decoder\.0\.", "decoder.frequency."),
    (r"^decoder\.px_dropout_decoder\.", "decoder.dropout_logits."),
    (r"^decoder\.px_r_decoder\.", "decoder.log_dispersion."),
    (r"^alpha_posterior_logit$", "alpha_logit"),
    (r"^beta_posterior_logit$", "beta_logit"),
]
"""scvi-tools' state-dict names → this library's (regular expressions, applied in turn)."""
POSTERIOR_LOGITS = ("alpha_logit", "beta_logit")


def is_scvi_tools_folder(folder: str | Path, prefix: str = "") -> bool:
    """A folder scvi-tools saved: its ``model.pt`` and none of this library's ``config.json``."""
    folder = Path(folder)
    return (folder / f"{prefix}model.pt").is_file() and not (folder / "config.json").exists()


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
        return torch.load(path, map_location="cpu", weights_only=True)


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
    renamed = {}
    for name, value in saved["model_state_dict"].items():
        if not isinstance(value, torch.Tensor):
            continue  # pyro's parameter store: empty for these models
        for pattern, replacement in RENAMES:
            name = re.sub(pattern, replacement, name)
        renamed[name] = value
    if hasattr(module, "posterior_scale"):  # scvi-tools' α = σ(logit); ours = scale · σ(logit), scale ≥ 1
        for name in POSTERIOR_LOGITS:
            share = torch.sigmoid(renamed[name]) / module.posterior_scale
            renamed[name] = torch.log(share) - torch.log1p(-share)
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
    names = {"elbo_train": "elbo_train", "elbo_validation": "elbo_validation",
             "reconstruction_loss_train": "reconstruction_loss_train",
             "reconstruction_loss_validation": "reconstruction_loss_validation",
             "kl_local_train": "kl_local_train", "kl_local_validation": "kl_local_validation"}
    columns = {ours: frame.iloc[:, 0].to_numpy() for theirs, ours in names.items()
               if isinstance(frame := frames.get(theirs), pd.DataFrame) and len(frame)}
    if not columns:
        return pd.DataFrame()
    length = min(len(v) for v in columns.values())
    return pd.DataFrame({"epoch": np.arange(1, length + 1), **{k: v[:length] for k, v in columns.items()}})
