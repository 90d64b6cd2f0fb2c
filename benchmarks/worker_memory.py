"""Peak memory of a training worker against the memory guard's estimate, for data of several sizes.

Each case trains a few epochs through the real service (a worker process, as the dashboard does) and prints the
worker's peak resident memory (``peak_memory_bytes`` in its status.json, from getrusage) next to
``dashboard.estimates.peak_memory_bytes``. The guard refuses a run when the estimate exceeds the budget, so the
estimate should be at or above the measured peak without being far above it.

    python benchmarks/worker_memory.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import config as cfg  # noqa: E402
from dashboard import estimates  # noqa: E402
from dashboard.service import WORKER_BASE_BYTES, TrainingService  # noqa: E402
from scvi_core import simulate  # noqa: E402

CASES = [  # (model, cells, genes, batch size)
    ("SCVI", 2000, 500, 128),
    ("AUTOZI", 2000, 500, 128),
    ("SCVI", 20000, 1000, 128),
    ("SCVI", 20000, 1000, 1024),
    ("AUTOZI", 50000, 2000, 512),
]


def main() -> None:
    service = TrainingService(tempfile.mkdtemp(), slots=1, memory_budget=2**40)
    try:
        print(f"{'model':7s} {'cells':>7s} {'genes':>6s} {'batch':>6s} {'matrix':>8s} {'measured':>9s} "
              f"{'estimate':>9s}  ratio")
        for model, n_cells, n_genes, batch in CASES:
            adata = simulate(n_cells=n_cells, n_genes=n_genes, seed=0)
            config = cfg.preset_config(model, "standard", n_cells, n_genes)
            config["train_params"] |= {"max_epochs": 2, "batch_size": batch, "early_stopping": False}
            run_id = service.submit(config, adata, batch_key="batch")
            status = service.wait(run_id, 1800)
            measured = status["peak_memory_bytes"]
            estimate = estimates.peak_memory_bytes(WORKER_BASE_BYTES, adata, config)
            print(f"{model:7s} {n_cells:7d} {n_genes:6d} {batch:6d} "
                  f"{estimates.format_bytes(estimates.matrix_bytes(adata)):>8s} "
                  f"{estimates.format_bytes(measured):>9s} {estimates.format_bytes(estimate):>9s}  "
                  f"{estimate / measured:.2f}", flush=True)
    finally:
        service.close()


if __name__ == "__main__":
    main()
