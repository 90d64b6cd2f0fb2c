"""dashboard: the services behind the Streamlit pages, with no Streamlit in them.

Three layers, each importing only those below it: the views (``app.py``, ``pages/``, ``ui/``) call this package
(the session's workspace, training configurations, the run store, the training queue and its worker processes),
which calls ``scvi_core`` (the library a notebook user imports). ``scvi_core`` never imports ``dashboard``.
"""
