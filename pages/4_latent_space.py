"""Latent space: a UMAP of the trained model's cell embedding, coloured by batch or label (placeholder)."""

import streamlit as st

st.title("Latent space (UMAP)")
if st.session_state["workspace"].current_run_id is None:
    st.info("Train a model first: the latent space comes from a finished training run.")
    st.page_link("pages/3_training.py", label="Go to Training", icon=":material/model_training:")
else:
    st.info("A UMAP of the latent space, coloured by batch or cell label, will appear here.")
