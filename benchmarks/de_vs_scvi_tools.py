"""Does ``method="scvi"`` compute what scvi-tools computes? Its agreement with scvi-tools 1.4 on the same cells,
against scvi-tools' agreement with itself across training seeds.

Data: the real PBMC demo (2,860 cells × 2,000 genes, 3 batches), cell types from scanpy alone (Leiden on PCA of
log-normalised counts, each cluster named by the textbook markers it expresses most), so neither model defines the
groups. Both sides train SCVI with the same settings (batch key, 10 latent dimensions, ZINB, lr 1e-3, ``--epochs``
epochs without early stopping, the KL weight warmed up over all of them on both sides (scvi-tools' default warms it
up over 400 epochs whatever their number, so its side is told the number), 90% of cells for training) on every
cell, for each of ``--seeds`` (default 0 1 2; on both sides the seed also draws the initial weights), and answer the
same questions in change mode (δ 0.25, FDR 0.05): each cell type against the rest, and a null (two random halves of the
T cells, as pandas query strings, where every call is false). Reported per comparison: Spearman correlations over
genes of ``proba_de`` and of ``lfc_mean``, the mean and range over every pair of scvi-tools seeds, over every pair
(ours, scvi-tools'), and over every pair of our seeds; whether the two sides' models are one population (the mean
Spearman within the sides less the mean between them, against every relabelling of the models into two sides: a
p-value that accounts for pairs sharing a model, which comparing the means does not); the calls on each side; the
null's calls and largest |LFC|.
Then, on the same weights (each scvi-tools model, saved and opened here with ``SCVI.load``), what separates the DE
computation from the training: scvi-tools' answer against scvi-tools' own with other posterior draws, and against
this library's change mode on those weights.

scvi-tools is not a dependency of the project: install it in an environment of its own and name its interpreter,

    python -m venv /tmp/scvi-tools && /tmp/scvi-tools/bin/pip install scvi-tools==1.4.2
    python benchmarks/de_vs_scvi_tools.py --scvi-tools-python /tmp/scvi-tools/bin/python [--epochs 400] [--seeds 0 1 2]
    python benchmarks/de_vs_scvi_tools.py --report FOLDER [FOLDER ...]    # the tables again, runs of other seeds merged

The scvi-tools side runs as ``--scvi-tools-side FOLDER SEED`` in that interpreter and imports only scvi-tools and
anndata (so this file imports the project inside functions).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

DELTA, FDR = 0.25, 0.05
NULL = ("half == 'A'", "half == 'B'")
TYPE_MARKERS = {"T": ["CD3E", "CD3D", "IL7R"], "B": ["MS4A1", "CD79A"], "monocyte": ["LYZ", "CD14", "S100A8"],
                "NK": ["NKG7", "GNLY"]}


def questions(adata) -> list[tuple[str, dict]]:
    """(name, differential_expression keyword arguments): each type vs the rest, and the null halves."""
    types = [t for t in TYPE_MARKERS if (adata.obs["cell_type"] == t).sum() >= 20]
    asked = [(f"{t} vs rest", {"groupby": "cell_type", "group1": t}) for t in types]
    return asked + [("T halves (null)", {"idx1": NULL[0], "idx2": NULL[1]})]


def prepare(folder: Path):
    """The PBMC demo with scanpy-made cell types and the null halves, written for both sides."""
    import numpy as np
    import scanpy as sc

    from scvi_core.datasets import pbmc_3batches

    adata = pbmc_3batches()
    work = adata.copy()
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.pca(work, n_comps=30, random_state=0)
    sc.pp.neighbors(work, random_state=0)
    sc.tl.leiden(work, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2, directed=False)
    names = {}
    for cluster in work.obs["leiden"].cat.categories:
        cells = (work.obs["leiden"] == cluster).to_numpy()
        scores = {t: float(np.asarray(work[cells, genes].X.mean())) for t, genes in TYPE_MARKERS.items()}
        best = max(scores, key=scores.get)
        names[cluster] = best if scores[best] > 1.0 else "other"
    adata.obs["cell_type"] = work.obs["leiden"].map(names).astype(str).astype("category")
    t_cells = np.flatnonzero(adata.obs["cell_type"] == "T")
    half = np.full(adata.n_obs, "", dtype=object)
    half[np.random.default_rng(0).permutation(t_cells)[: len(t_cells) // 2]] = "A"
    half[np.setdiff1d(t_cells, np.flatnonzero(half == "A"))] = "B"
    adata.obs["half"] = half.astype(str)
    adata.write_h5ad(folder / "pbmc.h5ad")
    print("cell types:", adata.obs["cell_type"].value_counts().to_dict(), f"; T halves {(half == 'A').sum()} + "
          f"{(half == 'B').sum()} cells")
    return adata


def answer_all(model, adata, **extra):
    import pandas as pd

    tables = []
    for name, kwargs in questions(adata):
        table = model.differential_expression(mode="change", delta=DELTA, fdr_target=FDR, **kwargs, **extra)
        tables.append(table.assign(question=name))
    return pd.concat(tables)


def scvi_tools_side(folder: Path, seed: int, epochs: int) -> None:
    """Runs in the scvi-tools interpreter."""
    import anndata
    import scvi

    scvi.settings.seed = seed
    adata = anndata.read_h5ad(folder / "pbmc.h5ad")
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
    model = scvi.model.SCVI(adata, n_latent=10)
    start = time.perf_counter()
    model.train(max_epochs=epochs, early_stopping=False, train_size=0.9, batch_size=128,
                plan_kwargs={"lr": 1e-3, "n_epochs_kl_warmup": epochs}, enable_progress_bar=False)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    answer_all(model, adata, silent=True).to_csv(folder / f"scvi_tools_{seed}.csv")
    print(f"scvi-tools seed {seed}: trained {trained:.0f} s, DE {time.perf_counter() - start:.1f} s")
    scvi.settings.seed = seed + 1000  # the same weights, other posterior draws: the DE's own noise
    answer_all(model, adata, silent=True).to_csv(folder / f"scvi_tools_redrawn_{seed}.csv")
    model.save(folder / f"scvi_tools_model_{seed}", overwrite=True)


def our_side(folder: Path, adata, seed: int, epochs: int) -> None:
    from scvi_core import SCVI

    data = adata.copy()
    SCVI.setup_anndata(data, batch_key="batch")
    model = SCVI(data, n_latent=10)
    start = time.perf_counter()
    model.train(max_epochs=epochs, lr=1e-3, batch_size=128, train_size=0.9, early_stopping=False,
                n_epochs_kl_warmup=epochs, seed=seed)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    answer_all(model, data, method="scvi", seed=seed, max_cells_per_group=None).to_csv(folder / f"ours_{seed}.csv")
    print(f"scvi_core seed {seed}: trained {trained:.0f} s, DE {time.perf_counter() - start:.1f} s")


def ours_on_their_weights(folder: Path, adata, seed: int) -> None:
    """This library's change mode on scvi-tools' own trained model (opened with ``SCVI.load``): what differs from
    scvi-tools' answer then is the DE computation alone, not the training."""
    from scvi_core import SCVI

    data = adata.copy()
    model = SCVI.load(folder / f"scvi_tools_model_{seed}", data)
    answer_all(model, data, method="scvi", seed=seed, max_cells_per_group=None).to_csv(
        folder / f"ours_on_scvi_tools_{seed}.csv")


def report(folders: list[Path]) -> None:
    """Agreement tables from the answers written in ``folders`` (one run, or several runs of other seeds merged)."""
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    sides = ("scvi_tools", "ours", "scvi_tools_redrawn", "ours_on_scvi_tools")
    read = {f"{side}_{path.stem.rsplit('_', 1)[1]}": pd.read_csv(path, index_col=0)
            for folder in folders for side in sides for path in folder.glob(f"{side}_[0-9]*.csv")}
    seeds = sorted({int(key.rsplit("_", 1)[1]) for key in read if key.startswith("ours_") and "scvi" not in key})
    seed_pairs = list(itertools.combinations(seeds, 2))
    pairs = {"scvi-tools vs itself": [(f"scvi_tools_{a}", f"scvi_tools_{b}") for a, b in seed_pairs],
             "ours vs scvi-tools": [(f"ours_{a}", f"scvi_tools_{b}") for a in seeds for b in seeds],
             "ours vs itself": [(f"ours_{a}", f"ours_{b}") for a, b in seed_pairs],
             "same weights: scvi-tools redrawn": [(f"scvi_tools_redrawn_{a}", f"scvi_tools_{a}") for a in seeds],
             "same weights: ours": [(f"ours_on_scvi_tools_{a}", f"scvi_tools_{a}") for a in seeds]}
    print(f"seeds {seeds}")
    for question in pd.unique(read[f"scvi_tools_{seeds[0]}"]["question"]):
        blocks = {k: t[t["question"] == question] for k, t in read.items()}
        print(f"\n{question}")
        for label, between in pairs.items():
            rho = {c: [spearmanr(blocks[a][c], blocks[b][c].reindex(blocks[a].index))[0] for a, b in between]
                   for c in ("proba_de", "lfc_mean")}
            print(f"  {label:<33} Spearman, mean (range) over {len(between)} pairs:  " + "   ".join(
                f"{c} {np.mean(r):.3f} ({min(r):.3f}–{max(r):.3f})" for c, r in rho.items()))
        print("  one population? " + "   ".join(
            "{} within − between {:+.4f}, permutation p {:.3f}".format(c, *_one_population(blocks, seeds, c))
            for c in ("proba_de", "lfc_mean")))
        for key, block in blocks.items():
            print(f"  {key:<22} calls {int(block[f'is_de_fdr_{FDR}'].sum()):>4}   max |lfc_mean| "
                  f"{block['lfc_mean'].abs().max():.2f}")


def _one_population(blocks, seeds: list[int], column: str, n_permutations: int = 2000) -> tuple[float, float]:
    """Are our trained models and scvi-tools' one population? The mean Spearman within the sides less the mean
    between them, and how often relabelling the 2·len(seeds) models into two random sides gives as large a value
    (every relabelling when there are few): a p-value that, unlike comparing the tables' means, accounts for the pairs
    sharing models."""
    import numpy as np
    from scipy.stats import spearmanr

    models = [f"scvi_tools_{s}" for s in seeds] + [f"ours_{s}" for s in seeds]
    values = [blocks[m][column].reindex(blocks[models[0]].index) for m in models]
    rho = spearmanr(np.column_stack(values))[0]
    n = len(seeds)

    def within_less_between(side):
        mask = np.zeros(2 * n, dtype=bool)
        mask[list(side)] = True
        same = np.equal.outer(mask, mask)
        upper = np.triu(np.ones_like(rho, dtype=bool), 1)
        return rho[same & upper].mean() - rho[~same & upper].mean()

    actual = within_less_between(range(n))
    splits = [side for side in itertools.combinations(range(2 * n), n) if 0 in side]
    if len(splits) > n_permutations:
        rng = np.random.default_rng(0)
        splits = [(0, *(1 + rng.permutation(2 * n - 1)[: n - 1])) for _ in range(n_permutations)]
    null = np.array([within_less_between(side) for side in splits])
    return actual, float(np.mean(null >= actual - 1e-12))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scvi-tools-python", help="the interpreter of an environment with scvi-tools installed")
    parser.add_argument("--scvi-tools-side", nargs=2, metavar=("FOLDER", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report", type=Path, nargs="+", metavar="FOLDER",
                        help="only report, from the answers of earlier runs (their folders, merged)")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    if args.scvi_tools_side:
        scvi_tools_side(Path(args.scvi_tools_side[0]), int(args.scvi_tools_side[1]), args.epochs)
        return
    if not args.scvi_tools_python:
        parser.error("--scvi-tools-python is needed (scvi-tools is not a dependency of the project)")
    folder = Path(tempfile.mkdtemp(prefix="de_vs_scvi_tools_"))
    print(f"answers in {folder} (--report {folder} prints these tables again, merged with other runs' folders)")
    adata = prepare(folder)
    for seed in args.seeds:
        subprocess.run([args.scvi_tools_python, __file__, "--scvi-tools-side", str(folder), str(seed),
                        "--epochs", str(args.epochs)], check=True)
        our_side(folder, adata, seed, args.epochs)
        ours_on_their_weights(folder, adata, seed)
    report([folder])


if __name__ == "__main__":
    main()
