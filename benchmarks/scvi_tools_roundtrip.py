"""Models of this library opened in scvi-tools, end to end: the max difference of the latent representation (and, for
AUTOZI, of α and β) between ours and scvi-tools on the same cells.

An SCVI and an AUTOZI are trained here on the PBMC demo (2,860 cells × 2,000 genes, 3 batches; ``--epochs``, default
20), saved with ``save(dir, format="scvi-tools", save_anndata=True)`` and opened by scvi-tools 1.4.2 with
``scvi.model.SCVI.load(dir)`` in an interpreter of its own, which writes back what it computes. The other direction
(scvi-tools' models opened here) is checked by ``tests/test_scvi_tools_models.py`` on fixtures scvi-tools made.

scvi-tools is not a dependency of the project: install it in an environment of its own and name its interpreter,

    python -m venv /tmp/scvi-tools && /tmp/scvi-tools/bin/pip install scvi-tools==1.4.2
    python benchmarks/scvi_tools_roundtrip.py --scvi-tools-python /tmp/scvi-tools/bin/python [--epochs 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `python benchmarks/...` finds scvi_core

MODELS = ("SCVI", "AUTOZI")


def scvi_tools_side(folder: Path) -> None:
    """Runs in the scvi-tools interpreter: open each saved model, write its latent (and AUTOZI's α, β)."""
    import numpy as np
    import scvi

    for name in MODELS:
        model = getattr(scvi.model, name).load(folder / name)
        values = {"latent": model.get_latent_representation()}
        if name == "AUTOZI":
            values |= {k: np.asarray(v) for k, v in model.get_alphas_betas().items()}
        np.savez(folder / f"{name}_scvi_tools.npz", **values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scvi-tools-python", help="the interpreter of an environment with scvi-tools installed")
    parser.add_argument("--scvi-tools-side", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if args.scvi_tools_side:
        scvi_tools_side(Path(args.scvi_tools_side))
        return
    if not args.scvi_tools_python:
        parser.error("--scvi-tools-python is needed (scvi-tools is not a dependency of the project)")
    import numpy as np

    from scvi_core import AUTOZI, SCVI
    from scvi_core.datasets import pbmc_3batches

    folder = Path(tempfile.mkdtemp(prefix="scvi_tools_roundtrip_"))
    ours = {}
    for name, model_class in zip(MODELS, (SCVI, AUTOZI), strict=True):
        adata = pbmc_3batches()
        model_class.setup_anndata(adata, batch_key="batch")
        model = model_class(adata)
        model.train(max_epochs=args.epochs)
        model.save(folder / name, format="scvi-tools", save_anndata=True)
        ours[name] = {"latent": model.get_latent_representation()}
        if name == "AUTOZI":
            ours[name] |= {k: np.asarray(v) for k, v in model.get_alphas_betas().items()}
    subprocess.run([args.scvi_tools_python, __file__, "--scvi-tools-side", str(folder)], check=True)
    for name in MODELS:
        theirs = np.load(folder / f"{name}_scvi_tools.npz")
        differences = {key: float(np.abs(np.ravel(ours[name][key]) - np.ravel(theirs[key])).max())
                       for key in theirs.files}
        cells = ours[name]["latent"].shape[0]
        print(f"{name} saved here, opened in scvi-tools 1.4.2 ({cells:,} cells): max |difference| "
              + ", ".join(f"{key} {value:.2e}" for key, value in differences.items()))


if __name__ == "__main__":
    main()
