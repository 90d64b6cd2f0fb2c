"""Entry point of the dashboard: ``streamlit run app.py``.

Builds the navigation (one page per file in ``pages/``), creates the session's :class:`~dashboard.workspace.Workspace`
(the one place where shared state lives: ``st.session_state["workspace"]``), runs the chosen page, and then shows in
the sidebar what is loaded, configured and trained, so that it reflects what the page just did.
"""

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import settings
from dashboard.services import service_for
from dashboard.session_folder import SessionFolder
from dashboard.workspace import Workspace
from ui import loading

st.set_page_config(page_title="scVI dashboard", page_icon=":material/biotech:", layout="wide")

if "workspace" not in st.session_state:
    workspace = Workspace()
    context = get_script_run_ctx()  # None when the file is run bare (multiprocessing re-runs a test's __main__)
    is_live = Runtime.instance().is_active_session if Runtime.exists() else None  # a server, not a test harness
    workspace.use_folder(SessionFolder(key=context.session_id if context else None, is_live=is_live))
    if settings.start_with_demo():
        workspace.start_with_demo(loading.demo("quick")[0])
    st.session_state["workspace"] = workspace

PAGES = [
    st.Page("pages/1_load_data.py", title="Load data", icon=":material/upload_file:", default=True),
    st.Page("pages/2_model.py", title="Model", icon=":material/neurology:"),
    st.Page("pages/3_training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/4_latent_space.py", title="Latent space (UMAP)", icon=":material/scatter_plot:"),
    st.Page("pages/5_zero_inflation.py", title="Zero-inflation", icon=":material/exposure_zero:"),
    st.Page("pages/7_differential_expression.py", title="Differential expression", icon=":material/compare_arrows:"),
    st.Page("pages/6_export.py", title="Export", icon=":material/download:"),
]

st.navigation(PAGES).run()

with st.sidebar:
    st.subheader("Workspace")
    st.markdown("  \n".join(f"**{label}:** {value}" for label, value in st.session_state["workspace"].status().items()))
    service = service_for(settings.runs_dir())
    active = service.active_run_ids()  # server-wide: possibly other sessions' runs
    if active:
        st.page_link("pages/3_training.py", label=f"Training queue: {len(active)} run{'s' if len(active) > 1 else ''}",
                     icon=":material/model_training:", query_params={"run": active[0]})
    if service.problem:  # a cluster that cannot be reached, or has no worker yet: the Training page says more
        st.caption(f":material/cloud_off: {service.problem.split('. ')[0]}.")
