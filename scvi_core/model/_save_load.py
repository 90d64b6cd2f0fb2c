"""Saving a model and opening a saved one, in this library's folder layout or in scvi-tools' (:mod:`._scvi_tools`):
what :class:`~scvi_core.model.BaseModel` inherits for ``save`` and ``load``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ..data import Registry, setup_anndata
from ..train import StopInfo, resolve_device
from . import _scvi_tools as scvi_tools

CONFIG_FILE, WEIGHTS_FILE, HISTORY_FILE, DATA_FILE = "config.json", "model.pt", "history.csv", "adata.h5ad"
INDICES_FILE = "indices.npz"  # the training and validation cells, when the model was trained
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, HISTORY_FILE, INDICES_FILE)
"""What a saved model is, besides the data saved with it (scvi-tools' folders: ``model.pt`` alone)."""


class SaveLoadMixin:
    """``save`` and ``load`` of a model (``self.module``, ``self.params``, ``self.registry``, ``self.data``,
    ``self.history`` and the training and validation cells)."""

    def save(self, dir_path: str | Path, overwrite: bool = False, save_anndata: bool = False, prefix: str = "",
             format: str = "scvi_core") -> None:
        """Write the model into ``dir_path``: this library's ``config.json`` (settings, registration, gene names),
        ``model.pt`` (weights only), ``history.csv`` and ``indices.npz`` (the training and validation cells); or,
        with ``format="scvi-tools"``, the ``model.pt`` that scvi-tools 1.x opens with
        ``scvi.model.SCVI.load(dir_path, adata)`` (:func:`~scvi_core.model._scvi_tools.to_model_file`).
        ``save_anndata``: the AnnData too, as ``adata.h5ad`` (then ``load`` needs none); ``prefix`` starts every file
        name, as in scvi-tools."""
        if format not in ("scvi_core", "scvi-tools"):
            raise ValueError(f"format must be 'scvi_core' or 'scvi-tools'; got {format!r}.")
        path = Path(dir_path)
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"{path} is not empty; pass overwrite=True to replace the saved model.")
        path.mkdir(parents=True, exist_ok=True)
        if format == "scvi-tools":
            torch.save(scvi_tools.to_model_file(self), path / f"{prefix}{WEIGHTS_FILE}")
        else:
            config = {
                "model": type(self).__name__,
                "params": self.params,
                "registry": self.registry.to_uns(),
                "gene_names": self.data.gene_names,
                "is_trained": self.is_trained,
                "stop": None if self.stop_info is None else self.stop_info.to_dict(),
            }
            (path / f"{prefix}{CONFIG_FILE}").write_text(json.dumps(config, indent=1))
            torch.save({k: v.cpu() for k, v in self.module.state_dict().items()}, path / f"{prefix}{WEIGHTS_FILE}")
            self.history.to_csv(path / f"{prefix}{HISTORY_FILE}", index=False)
            if self.train_indices is not None:
                np.savez(path / f"{prefix}{INDICES_FILE}", train=self.train_indices, validation=self.validation_indices)
        if save_anndata:
            self.adata.write_h5ad(path / f"{prefix}{DATA_FILE}")

    @classmethod
    def load(cls, dir_path: str | Path, adata=None, device: str = "cpu", format: str = "auto", prefix: str = ""):
        """Rebuild a saved model on ``adata``, which must have the same genes in the same order, and is registered as
        the model was. Reads this library's folders (``config.json``, ``model.pt`` with ``weights_only=True``: no
        pickle code runs) and those scvi-tools 1.x saves (``model.pt``, with ``adata.h5ad`` when saved with the data:
        then ``adata`` may be left out; ``prefix`` as scvi-tools' ``save`` used it), recognised by their files or
        forced with ``format="scvi-tools"`` (:mod:`scvi_core.model._scvi_tools` says what is read and how)."""
        path = Path(dir_path)
        if format not in ("auto", "scvi-tools", "scvi_core"):
            raise ValueError(f"format must be 'auto', 'scvi-tools' or 'scvi_core'; got {format!r}.")
        if format == "scvi-tools" or (format == "auto" and scvi_tools.is_scvi_tools_folder(path, prefix)):
            return cls._load_scvi_tools(path, adata, device, prefix)
        try:
            config = json.loads((path / f"{prefix}{CONFIG_FILE}").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"No saved model in {path}: {prefix}{CONFIG_FILE} is missing.") from None
        if config.get("model") != cls.__name__:
            raise ValueError(f"{path} holds a {config.get('model')} model, not {cls.__name__}.")
        adata = cls._saved_adata(path, prefix) if adata is None else adata
        state = torch.load(path / f"{prefix}{WEIGHTS_FILE}", map_location="cpu", weights_only=True)
        model = cls._rebuilt(adata, config["gene_names"], Registry.from_uns(config["registry"]), config["params"])
        if model.module.px_r is None:  # Poisson models saved before θ was left out of them
            state.pop("px_r", None)
        model._finish_loading(state, device, bool(config.get("is_trained", True)))
        history = path / f"{prefix}{HISTORY_FILE}"
        if history.exists() and history.stat().st_size > 1:
            model.history = pd.read_csv(history)
        model.stop_info = StopInfo.from_dict(config.get("stop"))
        indices = path / f"{prefix}{INDICES_FILE}"
        if indices.exists():
            with np.load(indices) as stored:
                model.train_indices, model.validation_indices = stored["train"], stored["validation"]
        return model

    @classmethod
    def _load_scvi_tools(cls, path: Path, adata, device: str, prefix: str):
        saved = scvi_tools.read_model_file(path / f"{prefix}model.pt")
        if scvi_tools.model_name(saved) != cls.__name__:
            raise ValueError(f"{path} holds a scvi-tools {scvi_tools.model_name(saved)} model, not {cls.__name__}.")
        adata = cls._saved_adata(path, prefix) if adata is None else adata
        params = scvi_tools.model_arguments(saved, list(inspect.signature(cls).parameters)[1:])
        model = cls._rebuilt(adata, [str(g) for g in saved["var_names"]], scvi_tools.registry(saved), params)
        attributes = saved["attr_dict"]
        model._finish_loading(scvi_tools.state_dict(saved, model.module), device, bool(attributes.get("is_trained_")))
        model.history = scvi_tools.history(saved)
        model.train_indices = attributes.get("train_indices_")
        model.validation_indices = attributes.get("validation_indices_")
        return model

    @staticmethod
    def _saved_adata(path: Path, prefix: str):
        """The AnnData saved with a model (``save_anndata=True``, in either format)."""
        data_file = path / f"{prefix}{DATA_FILE}"
        if not data_file.exists():
            raise ValueError(f"{path} holds no {data_file.name} (saved without save_anndata=True): give the AnnData "
                             "to load the model on.")
        return ad.read_h5ad(data_file)

    @classmethod
    def _rebuilt(cls, adata, gene_names: list[str], registry: Registry, params: dict):
        """The model with ``params`` on ``adata``, registered as ``registry`` says, once ``adata`` is checked to
        have the saved genes and categories."""
        genes = [str(g) for g in adata.var_names]
        if genes != gene_names:
            missing = sorted(set(gene_names) - set(genes))
            detail = f" Missing genes: {missing[:5]}." if missing else " Same genes in another order: reorder them."
            raise ValueError(f"This AnnData's genes do not match the saved model's.{detail}")
        setup_anndata(adata, layer=registry.layer, batch_key=registry.batch_key, labels_key=registry.labels_key)
        model = cls(adata, **params)
        if model.registry != registry:
            raise ValueError(
                "The batch / label categories of this AnnData differ from the saved model's: "
                f"saved {registry.batch_categories} / {registry.label_categories}, "
                f"here {model.registry.batch_categories} / {model.registry.label_categories}."
            )
        return model

    def _finish_loading(self, state: dict, device: str, is_trained: bool) -> None:
        self.module.load_state_dict(state)
        self.module.eval()
        self.device = resolve_device(device)
        self.module.to(self.device)
        self.is_trained = is_trained
