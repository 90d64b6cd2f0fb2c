"""How well differential expression finds the truly DE genes, against scanpy's Wilcoxon test, and how fast it is.

Accuracy, on the simulator with known fold changes (4 cell types, 2 batches, 4,000 cells × 1,000 genes, SCVI
trained 200 epochs, type_1 vs type_2, δ = 0.25; a gene is truly DE when |true log2 FC| ≥ δ, see
``scvi_core.simulate.true_lfc``): AUROC and AUPRC of ``proba_de``, the FDR-0.05 calls' share of the truly DE genes
found (TPR) and their observed false discovery proportion (FDP), and the mean |error| of ``lfc_mean`` on the DE
genes. The same cells through ``scanpy.tl.rank_genes_groups`` (Wilcoxon on log1p of counts per 10⁴, BH 0.05,
|log2 FC| ≥ δ) side by side.

Speed (2 CPU cores): the pair above, the markers of the 4 types, and the markers of 10 clusters (one-vs-rest) on
20,000 cells × 2,000 genes, with the peak RSS of the process. ``--memory`` instead measures, in a process of its own,
how much one comparison of 1,000 + 1,000 cells adds to the peak RSS at 30,000 genes (5,000 posterior samples).

    python benchmarks/de_accuracy.py [--epochs 200] [--skip-speed]
    python benchmarks/de_accuracy.py --memory
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

import numpy as np
import scanpy as sc
from sklearn.metrics import average_precision_score, roc_auc_score

from scvi_core import SCVI, simulate
from scvi_core.simulate import true_lfc

DELTA, FDR = 0.25, 0.05


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


def accuracy(epochs: int) -> SCVI:
    adata = simulate(n_cells=4000, n_genes=1000, n_cell_types=4, n_batches=2, seed=0)
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs, lr=1e-3, early_stopping=False)  # a fixed length, as the reference was measured
    print(f"SCVI on 4,000 × 1,000 simulated cells, {epochs} epochs: {time.perf_counter() - start:.0f} s")
    truth = true_lfc(adata, "type_1", "type_2")
    is_de = (truth.abs() >= DELTA).to_numpy()
    print(f"type_1 vs type_2: {is_de.sum()} truly DE genes of {len(truth)} (|true log2 FC| ≥ {DELTA})")
    for batch_correction in (False, True):
        start = time.perf_counter()
        table = model.differential_expression(groupby="cell_type", group1="type_1", group2="type_2", delta=DELTA,
                                              fdr_target=FDR, batch_correction=batch_correction)
        seconds = time.perf_counter() - start
        table = table.loc[truth.index]
        print(f"  change mode{' + batch correction' if batch_correction else ''} ({seconds:.1f} s): "
              + scores(is_de, table["proba_de"].to_numpy(), table[f"is_de_fdr_{FDR}"].to_numpy(),
                       table["lfc_mean"].to_numpy(), truth.to_numpy()))
    table = wilcoxon(adata, "type_1", "type_2").loc[truth.index]
    calls = ((table["pvals_adj"] < FDR) & (table["logfoldchanges"].abs() >= DELTA)).to_numpy()
    print("  scanpy Wilcoxon (BH 0.05, |log2 FC| ≥ 0.25): "
          + scores(is_de, -np.log10(table["pvals"].to_numpy() + 1e-300), calls, table["logfoldchanges"].to_numpy(),
                   truth.to_numpy()))
    return model


def speed(model: SCVI) -> None:
    start = time.perf_counter()
    model.differential_expression(groupby="cell_type")
    print(f"markers of the 4 types (one-vs-rest, 4,000 cells × 1,000 genes): {time.perf_counter() - start:.1f} s")
    adata = simulate(n_cells=20000, n_genes=2000, n_cell_types=10, n_batches=2, seed=1)
    SCVI.setup_anndata(adata, batch_key="batch")
    big = SCVI(adata)
    big.train(max_epochs=5, early_stopping=False)
    start = time.perf_counter()
    table = big.differential_expression(groupby="cell_type")
    print(f"markers of 10 clusters (one-vs-rest, 20,000 cells × 2,000 genes): {time.perf_counter() - start:.1f} s, "
          f"{len(table):,} rows")
    print(f"peak RSS of this process: {peak_rss_gb():.2f} GB")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def memory() -> None:
    adata = simulate(n_cells=2000, n_genes=30000, n_cell_types=2, n_batches=1, seed=2)
    SCVI.setup_anndata(adata)
    model = SCVI(adata)
    model.train(max_epochs=1, early_stopping=False)
    before = peak_rss_gb()
    start = time.perf_counter()
    model.differential_expression(groupby="cell_type", group1="type_1", group2="type_2")
    print(f"one comparison at 30,000 genes (1,000 + 1,000 cells, 5,000 samples): {time.perf_counter() - start:.1f} s; "
          f"peak RSS {before:.2f} GB before, {peak_rss_gb():.2f} GB after (a 5,000 × 30,000 float64 array alone "
          f"would be 1.2 GB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.memory:
        memory()
    else:
        trained = accuracy(args.epochs)
        if not args.skip_speed:
            speed(trained)
