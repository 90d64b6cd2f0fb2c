"""Training: queue the configured model, follow its progress live, stop or cancel it, and find every run again.

Runs train in worker processes of the server-wide :class:`~dashboard.service.TrainingService`; this page only
reads what they write to the runs directory and the queue. Any number of sessions may start runs: each waits its
turn in the queue. The followed run's id is in the URL (``?run=…``), so a reload or another tab reconnects to it. A
fragment redraws the progress every 2 s while the run trains and another the curve every 4 s (a plotly redraw costs
the browser far more than a line of text): watching then takes little CPU from training (see
benchmarks/live_view_cost.py).
"""

import secrets

import streamlit as st

from dashboard import config as cfg
from dashboard import settings
from dashboard.runs import where_it_trains
from dashboard.services import service_for
from ui.training_figures import loss_figure, overlay_figure

REFRESH_SECONDS = 2.0
CURVE_REFRESH_SECONDS = 4.0
TABLE_REFRESH_SECONDS = 10.0
ACTIVE = ("queued", "running")
STATE_ICONS = {"queued": ":material/hourglass_empty:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "interrupted": ":material/pause_circle:", "failed": ":material/error:",
               "cancelled": ":material/cancel:"}
workspace = st.session_state["workspace"]
service = service_for(settings.runs_dir())
store = service.store
owner = st.session_state.setdefault("owner", secrets.token_hex(4))  # whose runs are "yours" in the queue


def follow(run_id: str) -> None:
    """Show ``run_id`` on this page (its id goes into the URL) and, unless it failed, in the results pages."""
    st.query_params["run"] = run_id
    if service.status(run_id).get("state") not in ("failed", "cancelled"):
        workspace.current_run_id = run_id


def followed_run() -> str | None:
    """The run named in the URL (it survives a reload), else the session's current run; None when it is unknown."""
    run_id = st.query_params.get("run") or workspace.current_run_id
    if run_id is None:
        return None
    try:
        store.path(run_id)
    except KeyError:
        st.warning(f"There is no run {run_id!r} in {store.root}. Pick one from the list below.")
        del st.query_params["run"]
        return None
    follow(run_id)
    return run_id


# ---- starting -----------------------------------------------------------------------------------------------------
def start_section() -> None:
    config = workspace.model_config
    if workspace.prepared is None or config is None:
        st.info("Configure a model first: training needs prepared data and a model choice.")
        st.page_link("pages/2_model.py", label="Go to Model", icon=":material/neurology:")
        return
    n_cells, n_genes = workspace.prepared.n_obs, workspace.prepared.n_vars
    train = config["train_params"]
    estimate = service.estimate(config, n_cells, n_genes)
    if train["early_stopping"]:
        length = (f"at most {train['max_epochs']} epochs (early stopping after {train['early_stopping_patience']} "
                  f"epochs without improvement, best epoch kept)")
    else:
        length = f"{train['max_epochs']} epochs (early stopping off)"
    st.markdown(f"**{cfg.MODEL_NAMES[config['model']]}** on **{workspace.dataset_name}** ({n_cells:,} cells × "
                f"{n_genes:,} genes): {length}, learning rate {train['lr']:g}, batch size {train['batch_size']}; "
                f"{estimate.describe(train['early_stopping'])} on {service.device_label()}.")
    st.caption(f"Estimated from {estimate.source}.")
    check = cfg.validate(config, n_cells, n_genes, workspace.batch_key, workspace.labels_key)
    for message in check.errors:
        st.error(message, icon=":material/block:")
    if check.errors:
        st.page_link("pages/2_model.py", label="Change the settings on the Model page", icon=":material/neurology:")
    for message in check.warnings + [estimate.warning] * bool(estimate.warning):
        st.warning(message)
    if service.problem:
        st.warning(service.problem, icon=":material/cloud_off:")
    active = service.active_run_ids()
    if active:
        st.info(f"{len(active)} run{'s are' if len(active) > 1 else ' is'} training or waiting on {service.place} "
                f"({service.slots} training slot{'s' if service.slots != 1 else ''}): a new run joins the queue and "
                "starts when a slot is free.")
    if st.button("Start training" if not active else "Add to the queue", type="primary", key="start",
                 icon=":material/play_arrow:", disabled=bool(check.errors)):
        try:
            run_id = service.submit(config, workspace.prepared, workspace.dataset_name, workspace.batch_key,
                                    workspace.labels_key, owner=owner)
        except ValueError as err:  # settings that cannot work, or a run too large for this server's memory
            st.error(str(err), icon=":material/block:")
            return
        follow(run_id)
        st.rerun()


# ---- following one run ----------------------------------------------------------------------------------------------
def run_section(run_id: str) -> None:
    """The followed run; while it is queued or trains, its state and its curve are redrawn on their own clocks."""
    active = service.status(run_id)["state"] in ACTIVE
    st.fragment(run_every=REFRESH_SECONDS if active else None)(show_state)(run_id)
    st.fragment(run_every=CURVE_REFRESH_SECONDS if active else None)(show_curve)(run_id)


def show_state(run_id: str) -> None:
    status, config = service.status(run_id), store.read_config(run_id)
    state = status["state"]
    if state in ACTIVE:
        st.session_state["live_run"] = run_id
    elif st.session_state.pop("live_run", None) == run_id:
        st.rerun()  # it just ended: redraw the whole page (curve, Start button, run list)
    st.subheader(f"{STATE_ICONS.get(state, '')} Run {run_id}: {state}")
    started = f"started {status['started']}" if status.get("started") else "not started yet"
    where = f" · on {where_it_trains(status)}" if status.get("device") else ""
    st.caption(f"{cfg.MODEL_NAMES.get(config.get('model'), config.get('model'))} on {config.get('dataset_name')} · "
               f"{started}{where}")
    if state == "queued":
        show_queued(run_id)
    elif state == "running":
        show_progress(run_id, status, bool(config.get("train_params", {}).get("early_stopping")))
    else:
        show_outcome(status)


def show_queued(run_id: str) -> None:
    place = service.queue_position(run_id)
    if place is None:
        st.progress(0.0, text="Starting…")
        return
    wait = service.wait_seconds(run_id)
    starts = "as soon as a training slot is free" if not wait else f"in {cfg.format_duration(wait)}"
    st.info(f"Waiting in the queue: number {place[0]} of {place[1]}. It starts {starts}.",
            icon=":material/hourglass_empty:")
    st.button("Cancel", key="cancel", on_click=service.cancel, args=(run_id,), icon=":material/cancel:",
              help="Takes this run out of the queue; it is kept in the list as cancelled.")


def show_progress(run_id: str, status: dict, early_stopping: bool = False) -> None:
    done, total = status.get("epochs_done"), status.get("max_epochs") or 1
    if done is None:
        st.progress(0.0, text=status.get("message") or "Starting…")
    else:
        elapsed = status.get("train_seconds") or 0.0
        left = elapsed * (total - done) / max(done, 1e-9)
        most = "at most " if early_stopping else ""
        st.progress(min(done / total, 1.0), text=f"Epoch {status.get('epoch', 0) + 1} of {most}{total} · "
                                                 f"{status.get('cells_per_second', 0):,.0f} cells/s · {most}"
                                                 f"{cfg.format_duration(left)} left"
                                                 + (" (early stopping watches the validation curve)"
                                                    if early_stopping else ""))
    if service.is_stopping(run_id):
        st.button("Stopping…", key="stop", disabled=True, icon=":material/stop:")
    else:
        st.button("Stop", key="stop", on_click=service.stop, args=(run_id,), icon=":material/stop:",
                  help="Ends training within about a second and keeps the model trained so far.")


def show_curve(run_id: str) -> None:
    history = service.history(run_id)
    if history.empty:
        st.caption("The curve appears after the first epochs.")
        return
    status = service.status(run_id)
    show_terms = st.checkbox("Show reconstruction and KL terms", key="show_terms")
    kept = status.get("kept_epoch") if status["state"] not in ACTIVE else None
    st.plotly_chart(loss_figure(history, show_terms, kept), width="stretch", key="curve")
    st.caption("−ELBO per cell: how badly the model explains a cell's counts (lower is better). The validation curve "
               "uses cells held out from training; if it rises while the training curve falls, the model overfits. "
               "Early epochs may lie above the plotted range: the autoscale button shows them.")


def show_outcome(status: dict) -> None:
    message = status.get("message", "")
    if status["state"] == "failed":
        st.error(message)
    elif status["state"] in ("stopped", "interrupted", "cancelled"):
        st.warning(message)
    else:
        st.success(message)


# ---- the queue -----------------------------------------------------------------------------------------------------
def queue_section(followed: str | None) -> None:
    """Every run training or waiting on this server, in the order they run, with whose it is and when it starts;
    shown when there is more to see than the followed run."""
    if not set(service.active_run_ids()) - {followed}:
        return
    st.subheader("Training queue")
    st.fragment(run_every=CURVE_REFRESH_SECONDS)(queue_table)()


def queue_table() -> None:
    rows = service.queue_rows(owner)
    if not rows:
        st.caption("The queue is empty.")
        return
    st.dataframe(rows, hide_index=True)
    slots = (f"one per worker of the cluster ({settings.CLUSTER_ENV})" if service.cluster
             else f"{settings.SLOTS_ENV}")
    st.caption(f"{service.slots} run{'s train' if service.slots != 1 else ' trains'} at a time on {service.place} "
               f"({slots}); the others wait their turn. Waits are estimated from the speed measured on "
               f"{service.place}.")


# ---- all runs -------------------------------------------------------------------------------------------------------
def runs_section(followed: str | None) -> None:
    st.subheader("All runs")
    st.caption(f"Every run is kept in {store.root} (set SCVI_DASHBOARD_RUNS_DIR to use another folder), with its "
               "settings, history, model and results; finished and stopped runs can be reopened after a restart.")
    runs = service.list_runs()
    if runs.empty:
        st.caption("No runs yet.")
        return
    # While runs train, their rows (epochs, message) follow on a slow clock: a table is cheap to redraw, unlike a chart
    st.fragment(run_every=TABLE_REFRESH_SECONDS if service.active_run_ids() else None)(runs_table)()
    labels = dict(zip(runs["run_id"], [f"{r.run_id} · {cfg.MODEL_NAMES.get(r.model, r.model)} · {r.state}"
                                       for r in runs.itertuples()], strict=True))
    left, right = st.columns(2)
    with left:
        # Options are the labels themselves and there is no key: when a run's state changes, the picker is a new
        # widget and starts again on the followed run, instead of showing a stale state.
        run_ids = list(labels)
        chosen_label = st.selectbox("Open a run", list(labels.values()),
                                    index=run_ids.index(followed) if followed in labels else 0)
        chosen = run_ids[list(labels.values()).index(chosen_label)]
        st.button("Open", key="open", on_click=follow, args=(chosen,), icon=":material/folder_open:",
                  help="Shows its curves here; a finished or stopped run also becomes the one the results pages show.")
    with right:
        compared = st.multiselect("Compare runs (overlay their curves)", list(labels), format_func=labels.get,
                                  key="compare", max_selections=5)
    if len(compared) >= 2:
        differences = cfg.differences([store.read_config(run_id) for run_id in compared])
        histories = {run_id: service.history(run_id) for run_id in compared}
        st.plotly_chart(overlay_figure(histories, differences), width="stretch", key="overlay")


def runs_table() -> None:
    runs = service.list_runs()
    st.dataframe(runs.assign(model=runs["model"].map(cfg.MODEL_NAMES)), hide_index=True, column_config={
        "max_epochs": st.column_config.NumberColumn("of"),
        "final_elbo": st.column_config.NumberColumn("final −ELBO", format="%.1f",
                                                    help="Validation cells, at the epoch whose weights were kept "
                                                         "(the best one with early stopping); lower is better.")})


st.title("Training")
start_section()
followed = followed_run()
if followed:
    st.divider()
    run_section(followed)
queue_section(followed)
st.divider()
runs_section(followed)
service.warm_up()  # a run is likely to come: have a worker ready (after the estimate, whose calibration it would slow)
