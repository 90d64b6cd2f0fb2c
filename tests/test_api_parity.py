"""What a scvi-tools user passes to ``train``, ``save`` and ``load`` works here the same way (issue 22's list): a
learning rate in ``plan_kwargs``, ``check_val_every_n_epoch``, ``train_size=1.0``, a second ``train()`` that goes
on, the training and validation cells kept on save, and a numeric batch column's ``transform_batch=1``."""

import warnings

import numpy as np
import pytest

from scvi_core import SCVI, simulate


@pytest.fixture
def adata():
    data = simulate(n_cells=300, n_genes=30, n_batches=2, seed=0)
    data.obs["batch_number"] = (data.obs["batch"].cat.codes + 1).astype(int)  # batches 1 and 2, as numbers
    SCVI.setup_anndata(data, batch_key="batch_number")
    return data


def test_train_size_one_trains_without_validation_and_says_early_stopping_is_off(adata):
    model = SCVI(adata, n_latent=4)
    with pytest.warns(UserWarning, match="no validation cells"):
        model.train(max_epochs=2, train_size=1.0)
    assert model.stop_info.reason == "max_epochs" and len(model.validation_indices) == 0
    assert len(model.history) == 2 and "elbo_validation" not in model.history
    with pytest.raises(ValueError, match="needs validation cells"):  # asked for explicitly: still refused
        SCVI(adata).train(max_epochs=2, train_size=1.0, early_stopping=True)


def test_plan_kwargs_reach_training_and_unknown_ones_are_named(adata):
    with pytest.raises(ValueError, match="lr must be in"):
        SCVI(adata).train(max_epochs=1, plan_kwargs={"lr": 5.0})  # the value arrived where lr is checked
    with pytest.raises(TypeError, match="plan_kwargs may hold lr and n_epochs_kl_warmup; got \\['optimizer'\\]"):
        SCVI(adata).train(max_epochs=1, plan_kwargs={"optimizer": "AdamW"})


def test_validation_every_n_epochs_and_a_second_train_goes_on(adata):
    model = SCVI(adata, n_latent=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning with validation cells
        model.train(max_epochs=7, check_val_every_n_epoch=3, early_stopping=False)
    checked = model.history.loc[model.history["elbo_validation"].notna(), "epoch"].tolist()
    assert checked == [3, 6, 7]
    first_end = model.history["elbo_train"].iloc[-1]
    model.train(max_epochs=2, early_stopping=False)
    assert model.history["epoch"].tolist() == list(range(1, 10))
    fresh = SCVI(adata, n_latent=4)
    fresh.train(max_epochs=1, early_stopping=False)
    # the second call started from the weights reached, not from new ones
    assert abs(model.history["elbo_train"].iloc[7] - first_end) < abs(fresh.history["elbo_train"].iloc[0] - first_end)


def test_training_cells_kept_on_save_and_a_numeric_batch_transformed_by_its_number(adata, tmp_path):
    model = SCVI(adata, n_latent=4)
    model.train(max_epochs=2)
    model.save(tmp_path / "model")
    back = SCVI.load(tmp_path / "model", adata)
    np.testing.assert_array_equal(back.validation_indices, model.validation_indices)
    np.testing.assert_array_equal(back.train_indices, model.train_indices)
    as_number = model.get_normalized_expression(transform_batch=1, return_numpy=True)
    np.testing.assert_array_equal(as_number, model.get_normalized_expression(transform_batch="1", return_numpy=True))
    assert not np.allclose(as_number, model.get_normalized_expression(transform_batch=2, return_numpy=True))


def test_per_cell_elbo_and_reconstruction_error_average_to_the_means(adata):
    """``return_mean=False`` gives each cell's value (one draw of z each, as the means use): their average is the
    mean within the draws' noise, every cell has one, and the ELBO lies below −reconstruction by the KL."""
    model = SCVI(adata, n_latent=4)
    model.train(max_epochs=5)
    cells = np.arange(0, 300, 3)
    elbo = model.get_elbo(indices=cells, return_mean=False)
    reconstruction = model.get_reconstruction_error(indices=cells, return_mean=False)["reconstruction_loss"]
    assert elbo.shape == reconstruction.shape == (100,) and np.isfinite(elbo).all()
    assert (reconstruction > 0).all() and elbo.mean() < -reconstruction.mean()  # independent draws: on average
    assert elbo.mean() == pytest.approx(model.get_elbo(indices=cells), rel=0.02)
    assert reconstruction.mean() == pytest.approx(model.get_reconstruction_error(indices=cells)["reconstruction_loss"], rel=0.02)
