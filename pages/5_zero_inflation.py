"""Zero-inflation: which genes AutoZI calls zero-inflated, and how confidently (placeholder)."""

import streamlit as st

st.title("Zero-inflation")
if st.session_state["workspace"].current_run_id is None:
    st.info("Train an AutoZI model first: its per-gene zero-inflation calls are shown here.")
    st.page_link("pages/3_training.py", label="Go to Training", icon=":material/model_training:")
else:
    st.info("Per-gene zero-inflation probabilities from AutoZI will appear here.")
