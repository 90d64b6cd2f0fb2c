"""Differential-expression answers kept with their run, in the run's DE folder (:meth:`RunStore.de_dir
<dashboard.runs.RunStore.de_dir>`): each question answered once.

Why a disk cache: a markers question takes seconds to minutes (posterior draws for every group), the dashboard
reruns its script on every click, and reopening a run — also after a server restart — must show the answers already
found. Each answer is stored under a key that hashes the question, the settings and *which cells* were in each
group, so a re-clustering (other Leiden resolution) or a saved group redrawn with other cells never shows a stale
answer, and asking the same again is instant.

Per answer ``<key>``: ``<key>.csv`` (the table, gene in the first column), ``<key>.npz`` (the per-cell labels) and
``<key>.json`` (question, settings, when, how long), written last through a temporary file and ``os.replace``: an
answer whose ``.json`` exists is complete.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from scvi_core.de import DESettings, Question, answer, sort_groups

from . import atomic


@dataclass
class Answer:
    key: str
    question: Question
    settings: DESettings
    labels: np.ndarray
    """Group of each of the run's cells ("" for cells in no group) when the question was answered."""
    table: pd.DataFrame
    """``model.differential_expression``'s columns for every comparison, indexed by gene."""
    meta: dict


def cache_key(question: Question, settings: DESettings, labels: np.ndarray) -> str:
    hashed = asdict(settings)
    if hashed["method"] == "group-mean":
        del hashed["method"]  # the keys of answers kept before there were two methods (all group-mean) still match
    digest = hashlib.sha1(json.dumps({"question": asdict(question), "settings": hashed}, sort_keys=True).encode())
    digest.update("\0".join(np.asarray(labels, dtype=str)).encode())
    return digest.hexdigest()[:16]


def save(folder: str | Path, question: Question, settings: DESettings, labels: np.ndarray,
         table: pd.DataFrame, seconds: float | None = None, controls: dict | None = None) -> Answer:
    """Keep an answer with the run (the metadata last: its presence marks a complete answer). ``controls``: how the
    question was put (e.g. the dashboard's widget values), kept so it can be put again."""
    labels = np.asarray(labels, dtype=str)
    key = cache_key(question, settings, labels)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.replace_atomically(folder / f"{key}.csv", lambda tmp: table.rename_axis("gene").to_csv(tmp))
    atomic.write_arrays(folder / f"{key}.npz", labels=labels)
    counts = {g: int((labels == g).sum()) for g in sort_groups(labels)}
    meta = {"key": key, "question": asdict(question), "settings": asdict(settings), "title": question.title(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "created_ns": time.time_ns(),
            "seconds": seconds,
            "group_sizes": counts, "comparisons": list(pd.unique(table["comparison"])), "controls": controls or {}}
    atomic.write_text(folder / f"{key}.json", json.dumps(meta, indent=1))
    return Answer(key, question, settings, labels, table, meta)


def load(folder: str | Path, key: str) -> Answer:
    folder = Path(folder)
    meta = json.loads((folder / f"{key}.json").read_text())
    table = pd.read_csv(folder / f"{key}.csv", index_col=0, keep_default_na=False, na_values=[""])
    for column in ("comparison", "group1", "group2"):
        table[column] = table[column].astype(str)
    with np.load(folder / f"{key}.npz") as stored:
        labels = stored["labels"].astype(str)
    return Answer(key, Question(**meta["question"]), stored_settings(meta), labels, table, meta)


def stored_settings(meta: dict) -> DESettings:
    """The settings an answer was computed with. Answers kept before there were two methods were all computed by
    the group-mean test, and say so from their metadata on."""
    return DESettings(**{"method": "group-mean", **meta["settings"]})


def stored_key(folder: str | Path, question: Question, settings: DESettings, labels: np.ndarray) -> str | None:
    """The key of the stored answer to exactly this question, settings and groups of cells, or None."""
    key = cache_key(question, settings, labels)
    return key if (Path(folder) / f"{key}.json").exists() else None


def find(folder: str | Path, question: Question, settings: DESettings, labels: np.ndarray) -> Answer | None:
    """The stored answer to exactly this question, settings and groups of cells, or None."""
    key = stored_key(folder, question, settings, labels)
    return None if key is None else load(folder, key)


def saved(folder: str | Path) -> list[dict]:
    """The metadata of every stored answer of a run, newest first (damaged ones are left out)."""
    folder = Path(folder)
    metas = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (folder / f"{meta.get('key')}.csv").exists():
            metas.append(meta)
    return sorted(metas, key=lambda m: (m.get("created_ns", 0), m["key"]), reverse=True)  # two can share a second


def delete(folder: str | Path, key: str) -> None:
    for suffix in (".json", ".csv", ".npz"):
        (Path(folder) / f"{key}{suffix}").unlink(missing_ok=True)


def answer_and_save(model, folder: str | Path, question: Question, settings: DESettings, labels: np.ndarray,
                    progress: Callable[[int, int], None] | None = None, controls: dict | None = None) -> Answer:
    """The stored answer if there is one, else answer (timed) and store it."""
    found = find(folder, question, settings, labels)
    if found is not None:
        return found
    start = time.perf_counter()
    table = answer(model, question, settings, labels, progress)
    return save(folder, question, settings, labels, table, round(time.perf_counter() - start, 2), controls)

