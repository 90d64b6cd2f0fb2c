"""How well AUTOZI finds zero-inflated genes: simulated ground truth and ERCC negative controls.

Prints, for simulated data with known ZI genes: ROC AUC of P(ZI) and the true / false positive rates of the plain
rule P(ZI) > 0.5 and of the evidence-aware call, among genes with mean count > 1 (the AutoZI authors' advice).
Then, for the droplet ERCC spike-in controls in ../shared/data/ercc_controls (no biological zero inflation), the
share of spike-ins with mean > 1 called zero-inflated (the AutoZI paper reports about 3%).

    python benchmarks/autozi_accuracy.py [--epochs 400] [--no-early-stopping]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

import anndata as ad
import numpy as np
import scanpy as sc
from sklearn.metrics import roc_auc_score

from scvi_core import AUTOZI, simulate
from scvi_core.zero_inflation import ZI

ERCC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ercc_controls"
DROPLET_CONTROLS = ["svensson_chromium_1x", "svensson_chromium_2x", "klein_indrop_ercc", "zheng_gemcode_ercc",
                    "macosko_dropseq_ercc"]


def fit(adata, epochs: int, lr: float, early_stopping: bool, batch_key: str | None = None):
    AUTOZI.setup_anndata(adata, batch_key=batch_key)
    model = AUTOZI(adata)
    start = time.perf_counter()
    model.train(max_epochs=epochs, lr=lr, batch_size=min(128, int(0.9 * adata.n_obs)), early_stopping=early_stopping)
    seconds = time.perf_counter() - start
    return model.get_zero_inflation_table(), f"{len(model.history)} epochs, {seconds:.0f} s"


def simulated(epochs: int, early_stopping: bool, seed: int) -> None:
    adata = simulate(n_cells=2000, n_genes=500, seed=seed)
    table, took = fit(adata, epochs, 1e-2, early_stopping, batch_key="batch")
    truth = adata.var["is_zero_inflated"].to_numpy()
    expressed = table["mean_count"].to_numpy() > 1
    t, p = truth[expressed], table["prob_zero_inflated"].to_numpy()[expressed]
    call = table["call"].to_numpy()[expressed] == ZI
    print(f"simulated seed {seed}: {expressed.sum()} genes with mean > 1 ({t.sum()} ZI), {took}")
    print(f"  ROC AUC of P(ZI): {roc_auc_score(t, p):.3f}")
    print(f"  P(ZI) > 0.5:      TPR {np.mean(p[t] > 0.5):.3f}  FPR {np.mean(p[~t] > 0.5):.3f}")
    print(f"  evidence-aware:   TPR {np.mean(call[t]):.3f}  FPR {np.mean(call[~t]):.3f}  "
          f"undetermined {np.mean(table['call'].to_numpy()[expressed] == 'undetermined'):.3f}")


def ercc(epochs: int, early_stopping: bool) -> None:
    if not ERCC_DIR.is_dir():
        print(f"ERCC controls not found at {ERCC_DIR}; skipped.")
        return
    called_total = expressed_total = 0
    for name in DROPLET_CONTROLS:
        adata = ad.read_h5ad(ERCC_DIR / f"{name}.h5ad")
        sc.pp.filter_cells(adata, min_counts=1)
        table, took = fit(adata, epochs, 1e-2, early_stopping)
        expressed = table["mean_count"] > 1
        called = int((table.loc[expressed, "call"] == ZI).sum())
        plain = int((table.loc[expressed, "prob_zero_inflated"] > 0.5).sum())
        called_total += called
        expressed_total += int(expressed.sum())
        print(f"{name}: {adata.n_obs} cells, {int(expressed.sum())} spike-ins with mean > 1: "
              f"{called} called ZI (evidence-aware), {plain} with P(ZI) > 0.5; {took}")
    print(f"droplet ERCC overall: {called_total}/{expressed_total} = {called_total / max(expressed_total, 1):.1%} "
          "called ZI (AutoZI paper: about 3%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=400, help="maximum epochs")
    parser.add_argument("--no-early-stopping", action="store_true", help="train all epochs (over-calls ZI)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    early = not args.no_early_stopping
    print(f"AUTOZI, lr 1e-2, up to {args.epochs} epochs, early stopping {'on' if early else 'off'}")
    for seed in args.seeds:
        simulated(args.epochs, early, seed)
    ercc(args.epochs, early)
