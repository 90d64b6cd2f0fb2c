"""Write this folder's fixtures with scvi-tools 1.4.2, in an environment of its own (scvi-tools is not a dependency
of the project):

    python -m venv /tmp/scvi-tools && /tmp/scvi-tools/bin/pip install scvi-tools==1.4.2
    /tmp/scvi-tools/bin/python tests/data/scvi_tools/make_fixtures.py tests/data/scvi_tools

For SCVI and AUTOZI: a tiny model (``n_latent=5``, 5 epochs, batch size 64) of 200 simulated cells × 50 genes in two
batches, saved by scvi-tools with ``save_anndata=True`` into ``scvi/`` and ``autozi/``, and in
``<model>_expected.npz`` what scvi-tools' own modules compute from it at each cell's posterior mean in eval mode
(``latent``, the normalised expression ``rho``, ``mu``, ``theta``, ``zi_logits``) and AUTOZI's
``get_alphas_betas()``: the values ``tests/test_scvi_tools_models.py`` checks this library against.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
import torch


def counts() -> ad.AnnData:
    rng = np.random.default_rng(0)
    n, g = 200, 50
    mu = rng.gamma(2.0, 1.0, size=(1, g)) * rng.lognormal(0, 0.3, size=(n, 1))
    x = rng.poisson(mu * np.where(rng.random((n, g)) < 0.2, 0, 1)).astype(np.float32)
    obs = pd.DataFrame({"batch": np.where(np.arange(n) < 100, "b1", "b2")}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(g)]))


def expected(model) -> dict[str, np.ndarray]:
    module, data = model.module, model.adata
    module.eval()
    x = torch.tensor(data.X.toarray(), dtype=torch.float32)
    batch = torch.tensor((data.obs["batch"] == "b2").to_numpy().astype(np.int64))[:, None]
    with torch.no_grad():
        inference = module._regular_inference(x, batch)
        px = module.generative(z=inference["qz"].loc, library=inference["library"], batch_index=batch)["px"]
    values = {"latent": inference["qz"].loc.numpy(), "rho": px.scale.numpy(), "mu": px.mu.numpy(),
              "theta": px.theta.numpy(), "zi_logits": px.zi_logits.numpy()}
    np.testing.assert_allclose(values["latent"], model.get_latent_representation(), rtol=1e-5, atol=1e-6)
    if isinstance(model, scvi.model.AUTOZI):
        values |= {k: np.asarray(v) for k, v in model.get_alphas_betas().items()}
    return values


def main(out: Path) -> None:
    scvi.settings.seed = 0
    for name, model_class in (("scvi", scvi.model.SCVI), ("autozi", scvi.model.AUTOZI)):
        data = counts()
        model_class.setup_anndata(data, batch_key="batch")
        model = model_class(data, n_latent=5)
        model.train(max_epochs=5, batch_size=64, enable_progress_bar=False)
        model.save(out / name, save_anndata=True, overwrite=True)
        np.savez(out / f"{name}_expected.npz", **expected(model_class.load(out / name)))
        print(f"{name}: saved to {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
