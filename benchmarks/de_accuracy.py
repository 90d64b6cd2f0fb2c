"""How well both differential-expression methods (scVI's change mode, ``method="scvi"``, and the group-mean test,
``method="group-mean"``) find the truly DE genes, what they say where nothing differs, and how fast they are.

Simulated truth (4 cell types, 2 batches, 4,000 cells × 1,000 genes, SCVI trained 200 epochs, type_1 vs type_2,
δ = 0.25; a gene is truly DE when |true log2 FC| ≥ δ, ``scvi_core.data.true_lfc``): AUROC and AUPRC of
``proba_de``, the FDR-0.05 calls' share of the truly DE genes found (TPR) and their observed false discovery proportion
(FDP), the mean |error| of ``lfc_mean`` on the DE genes; scanpy's Wilcoxon on the same cells beside them.

Real cells (the 2,860-cell PBMC demo, SCVI at ``train()`` defaults): two random halves of the largest Leiden cluster
(every call is false; the largest |LFC|), and the ranks of the textbook markers of each cell type against the rest
(types from scanpy alone, as in ``benchmarks/de_vs_scvi_tools.py``).

Speed (2 CPU cores): the markers of 16 Leiden clusters of the PBMC demo with each method, and of 10 clusters of
20,000 cells × 2,000 genes. ``--memory`` measures, in a process of its own, how much one comparison of 1,000 + 1,000
cells adds to the peak RSS at 30,000 genes (5,000 posterior samples), per method.

    python benchmarks/de_accuracy.py [--epochs 200] [--skip-speed] [--skip-pbmc]
    python benchmarks/de_accuracy.py --memory
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

import numpy as np
import scanpy as sc
from sklearn.metrics import average_precision_score, roc_auc_score

from scvi_core import SCVI, embedding, simulate
from scvi_core.data import true_lfc

DELTA, FDR = 0.25, 0.05
METHODS = ("scvi", "group-mean")
TEXTBOOK = {"T": ["CD3E", "IL7R"], "B": ["MS4A1", "CD79A"], "monocyte": ["LYZ", "CST3", "CD14"], "NK": ["NKG7", "GNLY"]}


def scores(is_de: np.ndarray, score: np.ndarray, calls: np.ndarray, lfc: np.ndarray, truth: np.ndarray) -> str:
    found, false = (calls & is_de).sum(), (calls & ~is_de).sum()
    return (f"AUROC {roc_auc_score(is_de, score):.3f}  AUPRC {average_precision_score(is_de, score):.3f}  "
            f"called {calls.sum()}  TPR {found / is_de.sum():.3f}  FDP {false / max(calls.sum(), 1):.3f}  "
            f"|LFC error| on DE genes {np.abs(lfc - truth)[is_de].mean():.3f}")


def wilcoxon(adata, group1: str, group2: str):
    data = adata.copy()
    sc.pp.normalize_total(data, target_sum=1e4)
    sc.pp.log1p(data)
    sc.tl.rank_genes_groups(data, "cell_type", groups=[group1], reference=group2, method="wilcoxon")
    table = sc.get.rank_genes_groups_df(data, group=group1).set_index("names")
    return table


def accuracy(epochs: int) -> None:
    adata = simulate(n_cells=4000, n_genes=1000, n_cell_types=4, n_batches=2, seed=0)
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs, lr=1e-3, early_stopping=False)  # a fixed length, as the reference was measured
    print(f"SCVI on 4,000 × 1,000 simulated cells, {epochs} epochs: {time.perf_counter() - start:.0f} s")
    truth = true_lfc(adata, "type_1", "type_2")
    is_de = (truth.abs() >= DELTA).to_numpy()
    print(f"type_1 vs type_2: {is_de.sum()} truly DE genes of {len(truth)} (|true log2 FC| ≥ {DELTA})")
    for method in METHODS:
        for batch_correction in (False, True):
            start = time.perf_counter()
            table = model.differential_expression(groupby="cell_type", group1="type_1", group2="type_2", delta=DELTA,
                                                  fdr_target=FDR, batch_correction=batch_correction, method=method)
            seconds = time.perf_counter() - start
            table = table.loc[truth.index]
            print(f"  {method:<10}{' + batch correction' if batch_correction else '':<19} ({seconds:.1f} s): "
                  + scores(is_de, table["proba_de"].to_numpy(), table[f"is_de_fdr_{FDR}"].to_numpy(),
                           table["lfc_mean"].to_numpy(), truth.to_numpy()))
    table = wilcoxon(adata, "type_1", "type_2").loc[truth.index]
    calls = ((table["pvals_adj"] < FDR) & (table["logfoldchanges"].abs() >= DELTA)).to_numpy()
    print("  scanpy Wilcoxon (BH 0.05, |log2 FC| ≥ 0.25): "
          + scores(is_de, -np.log10(table["pvals"].to_numpy() + 1e-300), calls, table["logfoldchanges"].to_numpy(),
                   truth.to_numpy()))


def pbmc(skip_speed: bool) -> None:
    import de_vs_scvi_tools  # the scanpy-made cell types of the PBMC demo (this folder is on sys.path)

    adata = de_vs_scvi_tools.prepare(Path(tempfile.mkdtemp()))
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    start = time.perf_counter()
    model.train()
    print(f"SCVI on the PBMC demo at train() defaults: {time.perf_counter() - start:.0f} s")
    _, leiden = embedding.compute(model.get_latent_representation(), embedding.EmbeddingParams(resolution=1.5))
    leiden = np.asarray(leiden, dtype=str)
    largest = max(set(leiden), key=lambda c: (leiden == c).sum())
    cells = np.random.default_rng(0).permutation(np.flatnonzero(leiden == largest))
    print(f"random halves of Leiden cluster {largest} ({len(cells)} cells), δ {DELTA}, FDR {FDR}:")
    for method in METHODS:
        table = model.differential_expression(idx1=cells[: len(cells) // 2], idx2=cells[len(cells) // 2:],
                                              method=method)
        worst = table["lfc_mean"].abs().idxmax()
        print(f"  {method:<10} calls {int(table[f'is_de_fdr_{FDR}'].sum())}  max |lfc_mean| "
              f"{table['lfc_mean'].abs().max():.2f} ({worst}, in {100 * table.loc[worst, 'non_zeros_proportion1']:.0f}%"
              f" / {100 * table.loc[worst, 'non_zeros_proportion2']:.0f}% of cells)")
    print("cell type vs rest: calls, and the textbook markers' ranks (by P(DE), ties by damped fold change):")
    for method in METHODS:
        table = model.differential_expression(groupby="cell_type", group1=list(TEXTBOOK), method=method)
        for cell_type, genes in TEXTBOOK.items():
            block = table[table["group1"] == cell_type]
            ranks = {g: block.index.get_loc(g) + 1 for g in genes}
            print(f"  {method:<10} {cell_type:<9} calls {int(block[f'is_de_fdr_{FDR}'].sum()):>4}  "
                  + "  ".join(f"{g} {r}" for g, r in ranks.items()))
    if skip_speed:
        return
    adata.obs["leiden"] = embedding.compute(model.get_latent_representation(),
                                            embedding.EmbeddingParams(resolution=2.0))[1]
    n = adata.obs["leiden"].nunique()
    for method in METHODS:
        start = time.perf_counter()
        model.differential_expression(groupby="leiden", method=method)
        print(f"markers of {n} Leiden clusters of the PBMC demo, {method}: {time.perf_counter() - start:.1f} s")


def speed() -> None:
    adata = simulate(n_cells=20000, n_genes=2000, n_cell_types=10, n_batches=2, seed=1)
    SCVI.setup_anndata(adata, batch_key="batch")
    big = SCVI(adata)
    big.train(max_epochs=5, early_stopping=False)
    for method in METHODS:
        start = time.perf_counter()
        table = big.differential_expression(groupby="cell_type", method=method)
        print(f"markers of 10 clusters (one-vs-rest, 20,000 cells × 2,000 genes), {method}: "
              f"{time.perf_counter() - start:.1f} s, {len(table):,} rows")
    print(f"peak RSS of this process: {peak_rss_gb():.2f} GB")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def memory() -> None:
    adata = simulate(n_cells=2000, n_genes=30000, n_cell_types=2, n_batches=1, seed=2)
    SCVI.setup_anndata(adata)
    model = SCVI(adata)
    model.train(max_epochs=1, early_stopping=False)
    for method in METHODS:
        before = peak_rss_gb()
        start = time.perf_counter()
        model.differential_expression(groupby="cell_type", group1="type_1", group2="type_2", method=method)
        print(f"one comparison at 30,000 genes (1,000 + 1,000 cells, 5,000 samples), {method}: "
              f"{time.perf_counter() - start:.1f} s; peak RSS {before:.2f} GB before, {peak_rss_gb():.2f} GB after "
              f"(a 5,000 × 30,000 float32 array of draws alone would be 0.6 GB per group)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-pbmc", action="store_true")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.memory:
        memory()
    else:
        accuracy(args.epochs)
        if not args.skip_pbmc:
            pbmc(args.skip_speed)
        if not args.skip_speed:
            speed()
