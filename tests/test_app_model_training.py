"""The Model and Training pages through Streamlit's AppTest: a tiny run configured, started, followed to its end;
a run stopped mid-way; two sessions whose runs queue; a queued run cancelled; settings that cannot work blocked
with their message; the JSON settings round trip."""

import json
import time

import pytest

from dashboard import config as cfg
from dashboard import settings
from scvi_core import simulate
from dashboard.services import close_all, service_for


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def assert_clean(at):
    assert not at.exception, texts(at.exception)


@pytest.fixture
def model_page(app):
    """The demo prepared (with or without labels, see ``labels``), then the Model page open."""
    app.button(key="load_demo").click().run()
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    app.switch_page("pages/2_model.py").run()
    assert_clean(app)
    yield app
    stop_everything()


def service():
    return service_for(settings.runs_dir())


def stop_everything():
    """Never leave a worker training after a test."""
    for run_id in service().active_run_ids():
        if not service().cancel(run_id) and service().stop(run_id):
            service().wait(run_id, 60)


def tiny_settings(at, epochs: int):
    at.button(key="preset_quick").click().run()
    at.number_input(key="cfg_max_epochs").set_value(epochs).run()
    at.number_input(key="cfg_n_hidden").set_value(16).run()
    assert_clean(at)
    return at


def start(at):
    at.switch_page("pages/3_training.py").run()
    at.button(key="start").click().run()
    assert_clean(at)
    return at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]


def poll(at, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition(at):
        assert time.monotonic() < deadline, texts(at.subheader)
        time.sleep(0.3)
        at.run()
        assert_clean(at)


def state_of(at) -> str:
    return texts(at.subheader)


def has_button(at, key: str, label: str) -> bool:
    """Whether the page shows the button ``key`` with ``label`` (a queued run shows Cancel, not Stop, yet)."""
    return any(button.key == key and button.label == label for button in at.button)


def table(at, column: str):
    """The first table with ``column`` (the run list has run_id, the queue has run)."""
    return next(frame.value for frame in at.dataframe if column in frame.value)


def test_model_page_offers_both_models_with_presets(model_page):
    at = model_page
    assert at.radio(key="cfg_model").value == "AUTOZI"
    assert "Which genes are zero-inflated" in str(at.radio(key="cfg_model").proto)
    assert "Prior P(zero-inflated)" in [m.label for m in at.metric] and at.metric[0].value == "50%"
    at.number_input(key="cfg_alpha_prior").set_value(1.0).run()
    at.number_input(key="cfg_beta_prior").set_value(5.0).run()
    assert at.metric[0].value == "97%"
    at.checkbox(key="cfg_learn_prior").check().run()
    assert at.session_state["workspace"].model_config["model_params"]["alpha_prior"] is None
    at.radio(key="cfg_model").set_value("SCVI").run()
    assert_clean(at)
    config = at.session_state["workspace"].model_config
    assert config == cfg.preset_config("SCVI", "standard", 2000, 500)
    at.button(key="preset_thorough").click().run()
    assert at.session_state["workspace"].model_config["train_params"]["early_stopping"]
    assert "These settings can be trained." in texts(at.success)


def test_configure_start_and_finish_a_tiny_run(model_page):
    at = tiny_settings(model_page, epochs=3)
    run_id = start(at)
    poll(at, lambda a: "finished" in state_of(a))
    assert "Ran all 3 epochs" in texts(at.success)
    assert at.session_state["workspace"].current_run_id == run_id
    assert len(at.get("plotly_chart")) >= 1
    history = service().history(run_id)
    assert list(history["epoch"]) == [1, 2, 3]
    runs = table(at, "run_id")
    assert runs.loc[0, "run_id"] == run_id and "finished" in runs.loc[0, "state"]
    kept = service().status(run_id)["kept_epoch"]
    assert runs.loc[0, "final_elbo"] == pytest.approx(history["elbo_validation"].iloc[kept - 1])
    assert f"run {run_id}" in texts(at.sidebar.markdown)
    assert not at.button(key="start").disabled  # free again for the next run
    # the state shown is the state: no queue left in the banner, the button or the sidebar once the run has ended
    assert at.button(key="start").label == "Start training" and "training or waiting" not in texts(at.info)
    assert not at.sidebar.get("page_link")


def test_an_early_stopped_run_shows_why_it_stopped(model_page):
    at = tiny_settings(model_page, epochs=300)
    assert at.checkbox(key="cfg_early_stopping").value  # on in every preset
    at.number_input(key="cfg_lr").set_value(0.05).run()
    at.number_input(key="cfg_early_stopping_patience").set_value(2).run()
    at.number_input(key="cfg_n_epochs_kl_warmup").set_value(1).run()
    assert_clean(at)
    assert at.session_state["workspace"].model_config["train_params"]["early_stopping_patience"] == 2
    at.switch_page("pages/3_training.py").run()
    assert "at most 300 epochs (early stopping after 2 epochs without improvement" in texts(at.markdown)
    run_id = start(at)
    poll(at, lambda a: "finished" in state_of(a))
    status = service().status(run_id)
    kept, epochs = status["kept_epoch"], status["epoch"]
    assert status["stop_reason"] == "early_stopping" and epochs < 300
    assert (f"Stopped early at epoch {epochs} of 300: the validation ELBO had not improved by more than 0.1% for 2 "
            f"epochs; the weights of epoch {kept} (the best) were restored.") in texts(at.success)
    figure = at.get("plotly_chart")[0].proto.spec
    assert f"weights of epoch {kept} kept" in json.loads(figure)["layout"]["annotations"][0]["text"]


def test_stop_a_run_midway(model_page):
    at = tiny_settings(model_page, epochs=5000)
    run_id = start(at)
    poll(at, lambda a: len(service().history(run_id)) >= 1 and has_button(a, "stop", "Stop"))
    assert "on cpu" in texts(at.caption) and "cells/s" in str(at.get("progress")[0].proto)
    assert at.button(key="start").label == "Add to the queue" and not at.button(key="start").disabled
    assert "1 run is training or waiting on this server" in texts(at.info)
    assert [link.proto.label for link in at.sidebar.get("page_link")] == ["Training queue: 1 run"]
    at.button(key="stop").click().run()
    poll(at, lambda a: "stopped" in state_of(a))
    assert "model trained so far was saved" in texts(at.warning)
    assert service().store.has_model(run_id)


def second_session(_first):
    """Another browser session on the same server: its own AppTest (its own session state), same runs directory."""
    from tests.conftest import new_app

    other = new_app()
    other.button(key="load_demo").click().run()
    other.button(key="FormSubmitter:prepare-Prepare data").click().run()
    other.switch_page("pages/2_model.py").run()
    return tiny_settings(other, epochs=3)


def test_two_sessions_start_runs_at_once_the_second_waits_its_turn_then_trains(model_page):
    first = tiny_settings(model_page, epochs=5000)
    second = second_session(first)
    first_run = start(first)
    poll(first, lambda a: service().status(first_run)["state"] == "running")  # claimed a slot
    second_run = start(second)  # accepted, not refused
    assert "Waiting in the queue: number 1 of 1" in texts(second.info) and "starts" in texts(second.info)
    queue = table(second, "run")
    assert list(queue["run"]) == [first_run, second_run]
    assert list(queue["whose"]) == ["another session", "yours"] and queue["place"].iloc[1] == "1 of 1"
    poll(first, lambda a: has_button(a, "stop", "Stop"))
    first.button(key="stop").click().run()
    poll(second, lambda a: "finished" in state_of(a), timeout=120)
    assert "Ran all 3 epochs" in texts(second.success)
    assert service().status(first_run)["state"] == "stopped"


def test_a_queued_run_is_cancelled_from_its_page(model_page):
    first = tiny_settings(model_page, epochs=5000)
    second = second_session(first)
    start(first)
    queued = start(second)
    second.button(key="cancel").click().run()
    assert_clean(second)
    assert "cancelled" in state_of(second) and "Cancelled before it started." in texts(second.warning)
    assert service().status(queued)["state"] == "cancelled"


@pytest.mark.parametrize(
    ("control", "value", "message"),
    [
        ("cfg_batch_size", 5000, "larger than the 1,800 training cells"),
        ("cfg_alpha_prior", 0.0, "must both be above 0"),
        ("cfg_lr", 0.0, "learning rate must be above 0"),
    ],
)
def test_invalid_settings_are_blocked_with_their_message(model_page, control, value, message):
    at = model_page
    at.number_input(key=control).set_value(value).run()
    assert message in texts(at.error)
    assert not at.success
    at.switch_page("pages/3_training.py").run()
    assert message in texts(at.error)
    assert at.button(key="start").disabled


def test_label_level_mode_without_a_label_key_is_blocked(app):
    app.button(key="load_demo").click().run()
    app.selectbox(key="labels_key").select_index(0)  # "none"
    app.button(key="FormSubmitter:prepare-Prepare data").click().run()
    assert "label key: none" in texts(app.success)
    app.switch_page("pages/2_model.py").run()
    app.selectbox(key="cfg_zero_inflation").set_value("gene-label").run()
    assert "needs known cell labels, but no label key was chosen" in texts(app.error)
    app.switch_page("pages/3_training.py").run()
    assert app.button(key="start").disabled


def test_json_settings_round_trip(model_page):
    at = model_page
    at.number_input(key="cfg_alpha_prior").set_value(2.0).run()
    at.selectbox(key="cfg_zero_inflation").set_value("gene-batch").run()
    at.number_input(key="cfg_seed").set_value(7).run()
    saved = at.session_state["workspace"].model_config
    assert at.get("download_button")
    at.button(key="preset_quick").click().run()
    at.radio(key="cfg_model").set_value("SCVI").run()
    assert at.session_state["workspace"].model_config != saved
    at.file_uploader(key="config_upload").set_value(
        [("settings.json", cfg.to_json(saved).encode(), "application/json")]).run()
    assert_clean(at)
    assert at.session_state["workspace"].model_config == saved
    assert at.number_input(key="cfg_alpha_prior").value == 2.0 and at.radio(key="cfg_model").value == "AUTOZI"


def test_a_bad_settings_file_shows_a_message(model_page):
    at = model_page
    bad = json.dumps({"model": "SCVI", "model_params": {"n_latnet": 5}}).encode()
    at.file_uploader(key="config_upload").set_value([("bad.json", bad, "application/json")]).run()
    assert_clean(at)
    assert "Unknown setting(s) in 'model_params': n_latnet" in texts(at.error)


def test_run_list_reopens_a_run_and_overlays_two_priors(app):
    adata = simulate(n_cells=300, n_genes=60, seed=1)
    run_ids = []
    for alpha in (0.5, 2.0):
        config = cfg.preset_config("AUTOZI", "quick", 300, 60)
        config["model_params"] |= {"alpha_prior": alpha, "n_hidden": 16}
        config["train_params"] |= {"max_epochs": 2, "batch_size": 64}
        run_ids.append(service().submit(config, adata, "tiny", batch_key="batch"))
        service().wait(run_ids[-1], 120)
    app.switch_page("pages/3_training.py").run()
    assert_clean(app)
    assert list(table(app, "run_id")["run_id"]) == run_ids[::-1]  # newest first
    assert set(table(app, "run_id")["state"]) == {"finished"}

    picker = next(s for s in app.selectbox if s.label == "Open a run")
    picker.select_index(1).run()
    app.button(key="open").click().run()
    assert app.query_params["run"] in (run_ids[0], [run_ids[0]])
    assert app.session_state["workspace"].current_run_id == run_ids[0]
    assert "Ran all 2 epochs" in texts(app.success)

    app.multiselect(key="compare").set_value(run_ids).run()
    assert_clean(app)
    # the figure itself, not its serialisation (plotly escapes α as \u03b1 unless orjson is installed)
    figure = json.loads(app.get("plotly_chart")[-1].proto.spec)
    names = " ".join(trace.get("name", "") for trace in figure["data"])
    assert "α=0.5" in names and "α=2.0" in names


def test_an_unreachable_cluster_is_a_banner_and_the_run_waits_in_the_queue(model_page, monkeypatch):
    from tests.browser.conftest import free_port

    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(settings.CLUSTER_ENV, address)
    close_all()
    try:
        at = tiny_settings(model_page, epochs=3)
        run_id = start(at)  # accepted: it waits in the queue
        poll(at, lambda a: "is not reachable" in texts(a.warning))
        assert f"The cluster at {address} is not reachable" in texts(at.warning)
        assert "Waiting in the queue: number 1 of 1" in texts(at.info)
        assert f"The cluster at {address} is not reachable" in texts(at.sidebar.caption)
        assert "on the Dask cluster at" in texts(at.markdown)
        assert service().cancel(run_id)
    finally:
        monkeypatch.delenv(settings.CLUSTER_ENV)
        close_all()
