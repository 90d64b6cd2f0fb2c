"""Streamlit pieces shared by several pages (``scvi_core`` never imports Streamlit; these do)."""
