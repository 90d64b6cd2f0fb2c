"""Data-parallel training on two gloo processes on the CPU: the ranks agree on everything, two ranks of b cells
step as one process of 2b cells, and what they train loads and works in a single process."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scvi_core import AUTOZI, SCVI, distributions, simulate

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"SCVI": SCVI, "AUTOZI": AUTOZI}


def data(n_cells=401, n_genes=60):
    return simulate(n_cells=n_cells, n_genes=n_genes, seed=3)


def _rank(rank: int, folder: str, case: dict) -> None:
    """One process of a 2-process group, as ``torchrun`` would start it: train, then write what it holds."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        _train_and_write(case, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _train_and_write(case: dict, path: Path) -> None:
    if case.get("no_noise"):  # z and δ at their means: the step is then a function of the minibatch only
        torch.randn_like = torch.zeros_like
        distributions.sample_beta = lambda alpha, beta: alpha / (alpha + beta)
    adata = data(case.get("n_cells", 401))
    model_class = MODELS[case["model"]]
    model_class.setup_anndata(adata, batch_key="batch")
    model = model_class(adata, **case.get("model_args", {}))
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(device="cpu", **case["train"])
    torch.save({"before": before, "after": model.module.state_dict(), "history": model.history.to_dict("list"),
                "stop": model.stop_info.to_dict()}, path)


def run_two_ranks(tmp_path, case: dict) -> list[dict]:
    mp.spawn(_rank, args=(str(tmp_path), case), nprocs=2)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("model", ["SCVI", "AUTOZI"])
def test_ranks_hold_identical_parameters_and_stop_at_the_same_epoch(tmp_path, model):
    # 401 cells: 361 training cells, not a multiple of 2 × 32, so the last minibatch is uneven
    train = {"max_epochs": 80, "batch_size": 32, "lr": 3e-2, "early_stopping_patience": 2, "n_epochs_kl_warmup": 2}
    ranks = run_two_ranks(tmp_path, {"model": model, "train": train})
    for key, value in ranks[0]["after"].items():
        assert torch.equal(value, ranks[1]["after"][key]), key
    assert ranks[0]["stop"]["reason"] == ranks[1]["stop"]["reason"] == "early_stopping"
    assert ranks[0]["stop"]["epochs"] == ranks[1]["stop"]["epochs"] < 80
    del ranks[0]["history"]["seconds"], ranks[1]["history"]["seconds"]  # each rank's own clock
    assert ranks[0]["history"] == ranks[1]["history"]
    assert ranks[0]["before"]["z_encoder.mean.weight"].ne(ranks[0]["after"]["z_encoder.mean.weight"]).any()


@pytest.mark.parametrize("model", ["SCVI", "AUTOZI"])
def test_two_ranks_of_b_cells_take_the_step_of_one_process_of_2b(tmp_path, model):
    """One epoch of one step: 2 × 64 training cells (all of them, no validation), dropout off, no sampling noise.
    BatchNorm statistics over both ranks are what makes this hold (per-rank statistics give another step)."""
    common = {"model": model, "n_cells": 128, "no_noise": True, "model_args": {"dropout_rate": 0.0}}
    fixed = {"max_epochs": 1, "train_size": 1.0, "early_stopping": False, "lr": 1e-3}
    ranks = run_two_ranks(tmp_path, {**common, "train": {**fixed, "batch_size": 64}})
    context = mp.get_context("spawn")  # one process of 128 cells, in a fresh interpreter as the ranks were
    single = context.Process(target=_train_and_write,
                             args=({**common, "train": {**fixed, "batch_size": 128}}, tmp_path / "single.pt"))
    single.start()
    single.join()
    one = torch.load(tmp_path / "single.pt", weights_only=False)
    assert one["history"]["elbo_train"] == pytest.approx(ranks[0]["history"]["elbo_train"], rel=1e-5)
    compared = 0
    for key, start in one["before"].items():
        expected, got = one["after"][key] - start, ranks[0]["after"][key] - start
        # Adam moves a weight by about lr unless its gradient is ~0: a step far below lr is a gradient of
        # round-off only (a bias before BatchNorm, which subtracts it again), amplified differently by Adam.
        if start.is_floating_point() and expected.abs().max() > 0.1 * fixed["lr"]:
            full = expected.abs() > 0.5 * fixed["lr"]  # per entry: a partial Adam step is a round-off gradient
            torch.testing.assert_close(got[full], expected[full], rtol=1e-3, atol=1e-6, msg=key)
            compared += 1
    assert compared >= 12  # the weights and running statistics of every layer


def test_train_on_two_devices_returns_the_model_here_and_it_saves_and_loads(tmp_path):
    adata = data()
    SCVI.setup_anndata(adata, batch_key="batch")
    model = SCVI(adata)
    epochs_seen = []
    model.train(max_epochs=4, batch_size=64, devices=2, device="cpu", early_stopping=False,
                callback=lambda event: epochs_seen.append(event.epoch) if event.kind == "epoch" else None)
    assert epochs_seen == [1, 2, 3, 4] and len(model.history) == 4 and model.is_trained
    assert model.history["elbo_validation"].iloc[-1] < model.history["elbo_validation"].iloc[0]
    model.save(tmp_path / "model")
    loaded = SCVI.load(tmp_path / "model", data())
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-5,
                               atol=1e-6)


def test_stop_asked_of_rank_0_ends_every_rank(tmp_path):
    adata = data()
    AUTOZI.setup_anndata(adata)
    model = AUTOZI(adata)
    stop = threading.Event()

    def stop_after_two_epochs(event):
        if event.kind == "epoch" and event.epoch == 2:
            stop.set()

    model.train(max_epochs=50, batch_size=32, devices=2, device="cpu", callback=stop_after_two_epochs,
                stop_event=stop)
    assert model.stop_info.reason == "interrupted" and model.stop_info.epochs == 3


def test_torchrun_command_of_the_docs_trains_and_saves(tmp_path):
    adata = data()
    adata.write_h5ad(tmp_path / "data.h5ad")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
         "scvi_core.torchrun", str(tmp_path / "data.h5ad"), str(tmp_path / "saved"), "--batch-key", "batch",
         "--max-epochs", "3", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ran all 3 epochs" in done.stdout
    loaded = SCVI.load(tmp_path / "saved", data())
    assert len(loaded.history) == 3 and loaded.get_latent_representation().shape == (401, 10)


def test_bad_device_counts_are_refused_with_what_to_do():
    adata = data(n_cells=50)
    SCVI.setup_anndata(adata)
    with pytest.raises(ValueError, match="devices must be a whole number"):
        SCVI(adata).train(devices=0, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="GPU"):
            SCVI(adata).train(devices=2, device="cuda")


CONFIGURATIONS = [
    *[(SCVI, {"gene_likelihood": likelihood, "dispersion": dispersion})
      for likelihood in ("zinb", "nb", "poisson") for dispersion in ("gene", "gene-batch", "gene-cell")],
    (SCVI, {"use_observed_lib_size": False}),
    *[(AUTOZI, {"zero_inflation": mode}) for mode in ("gene", "gene-batch", "gene-cell")],
    (AUTOZI, {"alpha_prior": None, "beta_prior": None, "dispersion": "gene-cell"}),
]


@pytest.mark.parametrize(("model_class", "settings"), CONFIGURATIONS)
def test_every_parameter_built_gets_a_gradient(model_class, settings):
    """DistributedDataParallel runs with find_unused_parameters off: a parameter without a gradient would hang it."""
    adata = data(n_cells=64)
    model_class.setup_anndata(adata, batch_key="batch")
    model = model_class(adata, **settings)
    batch = model.data.batch(np.arange(64), torch.device("cpu"))
    model.module.loss(model.module(batch), 1.0, 64).backward()
    missing = [name for name, p in model.module.named_parameters() if p.grad is None]
    assert not missing, missing


def test_counts_on_disk_train_data_parallel_each_rank_reading_the_file(tmp_path):
    import anndata as ad

    adata = data()
    adata.write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    SCVI.setup_anndata(backed, batch_key="batch")
    on_disk = SCVI(backed)
    on_disk.train(max_epochs=3, batch_size=64, devices=2, device="cpu", early_stopping=False)
    SCVI.setup_anndata(adata, batch_key="batch")
    in_memory = SCVI(adata)
    in_memory.train(max_epochs=3, batch_size=64, devices=2, device="cpu", early_stopping=False)
    assert type(on_disk.data.matrix).__name__ == "DiskMatrix"
    # the same order on disk (one buffer holds these cells) as in memory: the same fit, up to the run-to-run
    # variation of data-parallel training (~0.1% here; one process gives identical histories, tests/test_ondisk.py)
    np.testing.assert_allclose(on_disk.history["elbo_train"], in_memory.history["elbo_train"], rtol=1e-2)
    assert on_disk.history["elbo_validation"].iloc[-1] < on_disk.history["elbo_validation"].iloc[0]  # it learns
