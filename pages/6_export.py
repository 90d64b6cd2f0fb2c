"""Export: download the trained model, latent coordinates and zero-inflation calls (placeholder)."""

import streamlit as st

st.title("Export")
if st.session_state["workspace"].current_run_id is None:
    st.info("Train a model first: there is nothing to export yet.")
    st.page_link("pages/3_training.py", label="Go to Training", icon=":material/model_training:")
else:
    st.info("Downloads of the model, the latent space and the zero-inflation calls will appear here.")
