"""Results pages in AppTest, on a tiny finished run: Latent space, Zero-inflation, Export."""

import numpy as np
import pytest

from scvi_core import groups
from scvi_core.runs import RunStore


def open_page(app, title: str):
    app.switch_page({"Latent space (UMAP)": "pages/4_latent_space.py", "Zero-inflation": "pages/5_zero_inflation.py",
                     "Export": "pages/6_export.py"}[title])
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "success", "error", "warning")
                     for e in getattr(app, kind))


def test_latent_space_page_without_runs_says_what_to_do(app):
    open_page(app, "Latent space (UMAP)")
    assert "No finished training run yet" in texts(app)


def test_latent_space_page_shows_the_run_and_saves_a_group(runs_copy, app):
    open_page(app, "Latent space (UMAP)")
    offered = " ".join(app.selectbox(key="results_run").options)
    assert runs_copy["AUTOZI"] in offered and runs_copy["SCVI"] in offered
    app.selectbox(key="results_run").set_value(runs_copy["AUTOZI"]).run()
    assert not app.exception
    assert app.session_state["workspace"].current_run_id == runs_copy["AUTOZI"]
    assert len(app.get("plotly_chart")) == 1
    # colour by a gene (denoised, then raw)
    app.selectbox(key="colour_by").set_value("gene").run()
    app.selectbox(key="colour_gene").set_value("gene_00003").run()
    assert not app.exception
    app.radio(key="colour_kind").set_value("raw counts").run()
    assert not app.exception
    # select cluster 0 and save it as a group
    app.radio(key="select_by").set_value("clusters or annotations").run()
    app.multiselect(key="select_values_leiden").set_value(["0"]).run()
    app.text_input(key="group_name").input("cluster zero")
    app.button[[b.label for b in app.button].index("Save selected cells as a group")].click().run()
    assert not app.exception
    assert "Saved group 'cluster zero'" in texts(app)
    saved = groups.read_groups(RunStore(runs_copy["root"]).results_dir(runs_copy["AUTOZI"]))
    assert list(saved) == ["cluster zero"] and len(saved["cluster zero"]) > 10
    # re-embed it
    app.button(key="reembed").click().run()
    assert not app.exception
    assert "re-embedded" in " ".join(h.value for h in app.subheader)
    assert len(app.get("plotly_chart")) == 2
