"""Does the default ``train()`` stop where the held-out fit is best, and how fast? Held-out ELBO per cell and wall time.

For each dataset the cells are split 90/10 once (seed 0: the same held-out cells for every run of that dataset). Every
model trains on the 90% only (its own validation split, which early stopping watches, lies inside the 90%) and is
judged by ``get_elbo`` on the 10% it never saw (per cell, higher is better; its z draws are seeded). Printed: the
default ``SCVI(...).train()`` (no arguments besides the batch key at setup) against fixed epoch counts
(``train(max_epochs=N, early_stopping=False, lr=1e-3)``: scVI's classic learning rate, ``--sweep-lr`` to change it),
and whether the default is within 0.5% of the best fixed count in at most a quarter of the time of 400 epochs (the
goal of issue 11). The time share is also given in epochs (validation included, an epoch costs the same in every run),
which a busy machine does not distort.

    python benchmarks/time_to_quality.py                                  # every dataset, 50 / 100 / 200 / 400 epochs
    python benchmarks/time_to_quality.py --datasets pbmc zeisel --epochs 100 400
    python benchmarks/time_to_quality.py --datasets pbmc --curve 200 --warmup 25   # held-out ELBO at every epoch

Datasets: ``simulated`` (scvi_core.data.simulate, 2,000 cells × 1,000 genes, 2 batches), ``pbmc`` (the shipped real PBMC
demo: 2,860 cells × 2,000 HVG, 3 batches, batch key ``batch``), ``mouse`` (../shared/data mouse_10x_10k_subset, 9,999 ×
715 after dropping all-zero cells and genes) and ``zeisel`` (../shared/data zeisel_descend_subset, 1,464 × 1,057).
``--curve N`` trains one run of N epochs (early stopping off, KL warm-up ``--warmup`` epochs: the trajectory the default
follows until it stops) and prints the validation and held-out ELBO of every epoch, then which epoch each patience
would have stopped at and kept: how the default's patience was chosen.

The machine is shared and noisy: compare times within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from scvi_core import SCVI, simulate
from scvi_core.datasets import pbmc_3batches

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("simulated", "pbmc", "mouse", "zeisel")
HELD_OUT_FRACTION = 0.1
GOAL_GAP, GOAL_TIME_SHARE = 0.005, 0.25


def load(name: str) -> tuple[ad.AnnData, str | None]:
    """The dataset as raw counts with all-zero cells and genes dropped, and its batch key."""
    if name == "simulated":
        adata, key = simulate(n_cells=2000, n_genes=1000, seed=0), "batch"
    elif name == "pbmc":
        adata, key = pbmc_3batches(), "batch"
    elif name == "mouse":
        adata, key = ad.read_h5ad(SHARED / "mouse_10x_10k_subset" / "mouse_10x_10k_subset.h5ad"), None
    elif name == "zeisel":
        adata, key = ad.read_h5ad(SHARED / "zeisel_descend_subset" / "zeisel_descend_subset.h5ad"), None
    else:
        raise ValueError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}.")
    x = sp.csr_matrix(adata.X)
    cells = np.asarray(x.sum(1)).ravel() > 0
    genes = np.asarray(x[cells].sum(0)).ravel() > 0
    return adata[cells][:, genes].copy(), key


def split(adata: ad.AnnData, batch_key: str | None, seed: int = 0) -> tuple[ad.AnnData, ad.AnnData]:
    """90% to train on (registered), 10% held out; the same cells on every call."""
    order = np.random.default_rng(seed).permutation(adata.n_obs)
    n_held = int(round(HELD_OUT_FRACTION * adata.n_obs))
    train, held = adata[np.sort(order[n_held:])].copy(), adata[np.sort(order[:n_held])].copy()
    SCVI.setup_anndata(train, batch_key=batch_key)
    return train, held


def held_out_elbo(model: SCVI, held: ad.AnnData) -> float:
    """ELBO per held-out cell; its z draws are seeded and do not disturb the training's random stream."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return model.get_elbo(adata=held)


def fit(train: ad.AnnData, held: ad.AnnData, **train_kwargs) -> dict:
    model = SCVI(train)
    start = time.perf_counter()
    model.train(**train_kwargs)
    seconds = time.perf_counter() - start
    info = getattr(model, "stop_info", None)
    return {"elbo": held_out_elbo(model, held), "seconds": seconds, "epochs": len(model.history),
            "why": info.message if info is not None else ""}


def curve(train: ad.AnnData, held: ad.AnnData, epochs: int, warmup: int, **train_kwargs) -> None:
    """Validation and held-out ELBO at every epoch of one run, and what each patience would have kept."""
    model = SCVI(train)
    held_elbo = {}

    def record(event):
        if event.kind == "epoch":
            held_elbo[event.epoch] = held_out_elbo(model, held)

    model.train(max_epochs=epochs, early_stopping=False, n_epochs_kl_warmup=warmup, callback=record, **train_kwargs)
    h = model.history.assign(held_out=[held_elbo[e] for e in model.history["epoch"]])
    print(f"{'epoch':>5} {'kl w':>5} {'val −ELBO':>10} {'held-out ELBO':>13} {'s':>6}")
    for row in h.itertuples():
        if row.epoch % 5 == 0 or row.epoch <= 3:
            print(f"{row.epoch:5d} {row.kl_weight:5.2f} {row.elbo_validation:10.2f} {row.held_out:13.2f} "
                  f"{row.seconds:6.1f}")
    best = h.loc[h["held_out"].idxmax()]
    print(f"best held-out: {best.held_out:.2f} at epoch {int(best.epoch)}")
    for min_delta in (0.0, 5e-4, 1e-3, 2e-3):
        for patience in (5, 10, 15, 20, 30, 45):
            stop, kept = replay(h["elbo_validation"].to_numpy(), h["kl_weight"].to_numpy(), patience, min_delta)
            rule = f"patience {patience:2d}, min_delta {min_delta:g}"
            if stop is None:
                print(f"{rule}: no stop within {epochs} epochs")
                continue
            kept_elbo = h["held_out"].iloc[kept - 1]
            print(f"{rule}: stops at epoch {stop}, keeps epoch {kept}: held-out {kept_elbo:.2f} "
                  f"({kept_elbo / best.held_out - 1:+.2%} vs best), {h['seconds'].iloc[stop - 1]:.1f} s")


def replay(validation: np.ndarray, kl_weight: np.ndarray, patience: int, min_delta: float
           ) -> tuple[int | None, int]:
    """The default rule on a recorded curve: the best epoch so far is kept; stop after ``patience`` epochs, counted
    from the end of the KL warm-up, without one that improves the validation −ELBO by more than a share
    ``min_delta`` of it (the rule of :func:`scvi_core.train.train_module`)."""
    best, best_epoch, since, reference = np.inf, 0, 0, np.inf
    for epoch, (value, weight) in enumerate(zip(validation, kl_weight, strict=True), start=1):
        if value < best:
            best, best_epoch = value, epoch
        if not np.isfinite(reference) or value < reference - min_delta * abs(reference):
            reference, since = value, 0
        elif weight >= 1.0:
            since += 1
            if since >= patience:
                return epoch, best_epoch
    return None, best_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--epochs", nargs="*", type=int, default=[50, 100, 200, 400],
                        help="fixed epoch counts to compare with (none: the default only)")
    parser.add_argument("--no-default", action="store_true", help="skip the default train()")
    parser.add_argument("--sweep-lr", type=float, default=1e-3,
                        help="learning rate of the fixed-epoch runs (1e-3: scVI's and scvi-tools' usual value)")
    parser.add_argument("--curve", type=int, metavar="N", help="one N-epoch run, held-out ELBO at every epoch")
    parser.add_argument("--warmup", type=int, default=None, help="KL warm-up epochs of --curve")
    parser.add_argument("--lr", type=float, nargs="+", default=[None], help="learning rate(s) of --curve")
    args = parser.parse_args()
    summary = []
    for name in args.datasets:
        adata, batch_key = load(name)
        train, held = split(adata, batch_key)
        print(f"\n## {name}: {train.n_obs:,} training + {held.n_obs:,} held-out cells × {adata.n_vars:,} genes, "
              f"batch key {batch_key}")
        if args.curve:
            for lr in args.lr:
                print(f"# lr {lr or 'default'}, KL warm-up {args.warmup}")
                curve(train, held, args.curve, args.warmup, **({} if lr is None else {"lr": lr}))
            continue
        rows = {}
        print(f"{'run':>12} {'held-out ELBO':>13} {'seconds':>8} {'epochs':>6}  why it stopped", flush=True)
        runs = [] if args.no_default else [("default", {})]
        runs += [(f"{n} epochs", {"max_epochs": n, "early_stopping": False, "lr": args.sweep_lr}) for n in args.epochs]
        for label, kwargs in runs:  # each row is printed when its run ends
            r = rows[label] = fit(train, held, **kwargs)
            print(f"{label:>12} {r['elbo']:13.2f} {r['seconds']:8.1f} {r['epochs']:6d}  {r['why']}", flush=True)
        fixed = {k: v for k, v in rows.items() if k != "default"}
        if "default" in rows and fixed:
            best_label = max(fixed, key=lambda k: fixed[k]["elbo"])
            gap = rows["default"]["elbo"] / fixed[best_label]["elbo"] - 1  # ELBOs are negative: > 0 means worse
            full = rows.get("400 epochs")
            share = rows["default"]["seconds"] / full["seconds"] if full else float("nan")
            epoch_share = rows["default"]["epochs"] / 400
            ok = gap <= GOAL_GAP and min(share if full else epoch_share, epoch_share) <= GOAL_TIME_SHARE
            quality = f"{-100 * gap:.2f}% better" if gap < 0 else f"{100 * gap:.2f}% worse"
            summary.append(f"{name}: default {rows['default']['elbo']:.2f} vs best fixed "
                           f"{fixed[best_label]['elbo']:.2f} ({best_label}): {quality}; "
                           + (f"{share:.0%} of the 400-epoch time, " if full else "")
                           + f"{epoch_share:.0%} of its epochs -> goal {'met' if ok else 'NOT met'}")
    if summary:
        print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
