"""Model: choose scVI or AutoZI and their settings for the prepared data (placeholder until its issue lands)."""

import streamlit as st

st.title("Model")
if st.session_state["workspace"].prepared is None:
    st.info("Load and prepare data first: the model is set up for the prepared cells and genes.")
    st.page_link("pages/1_load_data.py", label="Go to Load data", icon=":material/upload_file:")
else:
    st.info("Choosing between scVI and AutoZI and their settings will appear here.")
