"""Training: fit the configured model and follow its progress (placeholder until its issue lands)."""

import streamlit as st

st.title("Training")
if st.session_state["workspace"].model_config is None:
    st.info("Configure a model first: training needs prepared data and a model choice.")
    st.page_link("pages/2_model.py", label="Go to Model", icon=":material/neurology:")
else:
    st.info("Starting a training run and following its loss curves will appear here.")
