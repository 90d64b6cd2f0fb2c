"""The ``torchrun`` entry point: one model trained data-parallel on a cluster, every rank running this module.

    torchrun --standalone --nproc_per_node=2 -m scvi_core.torchrun data.h5ad saved_model --batch-key batch

Every rank reads the file and trains inside the process group that ``torchrun`` set up
(:mod:`scvi_core.train._data_parallel` says how, and when it pays); rank 0 saves the model, which loads anywhere with
``SCVI.load(saved_model, adata)``. An application of the library rather than part of it, so it is a module of its own
that imports the models, which the training code never does.
"""

from __future__ import annotations

import argparse
import os

import anndata as ad
import torch
import torch.distributed as dist

from .model import MODELS
from .train import TIMEOUT, backend_for, rank_device


def main(argv: list[str] | None = None) -> None:
    """The ``torchrun`` entry point (see the module docstring): every rank reads the file, rank 0 saves."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("h5ad")
    parser.add_argument("save_dir")
    parser.add_argument("--model", choices=tuple(MODELS), default="SCVI")
    parser.add_argument("--batch-key")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=128, help="cells per process and step")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = rank_device(torch.device("cuda" if cuda else "cpu"), int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend_for(device), timeout=TIMEOUT)  # torchrun's environment says where
    try:
        model_class = MODELS[args.model]
        adata = ad.read_h5ad(args.h5ad)
        model_class.setup_anndata(adata, batch_key=args.batch_key)
        model = model_class(adata)
        model.train(max_epochs=args.max_epochs, batch_size=args.batch_size, device=device)
        if dist.get_rank() == 0:
            model.save(args.save_dir, overwrite=True)
            print(model.stop_info.message)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
