"""``scvi-dashboard`` (or ``python -m dashboard``): start the dashboard, ``streamlit run app.py``, from the checkout
this package belongs to; extra arguments go to Streamlit (e.g. ``--server.port 8502``). This process becomes
Streamlit's (``os.execv``), so the services layer itself never imports Streamlit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def main(argv: list[str] | None = None) -> None:
    if not APP.exists():
        sys.exit(f"The dashboard's pages are not installed beside this package (no {APP}): install it from a "
                 "checkout with `pip install -e .`, or run `streamlit run app.py` in the checkout.")
    arguments = sys.argv[1:] if argv is None else argv
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(APP), *arguments])  # becomes Streamlit


if __name__ == "__main__":
    main()
