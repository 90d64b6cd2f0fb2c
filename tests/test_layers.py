"""The three layers import only downwards: views (app.py, pages/, ui/) → dashboard/ → scvi_core/.

Checked on the source (every import statement, parsed with ``ast``), so a lazy import inside a function counts too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(folder: str) -> dict[str, set[str]]:
    """For every .py file under ``folder``: the top-level packages it imports."""
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("scvi_core", {"streamlit", "dashboard", "ui", "pages"}),
    ("dashboard", {"streamlit", "ui", "pages"}),
])
def test_lower_layers_never_import_upper_ones(folder, forbidden):
    files = imported_packages(folder)
    assert files, f"no Python files under {folder}"
    offenders = {path: sorted(names & forbidden) for path, names in files.items() if names & forbidden}
    assert offenders == {}


def test_the_services_live_in_dashboard_not_in_the_library():
    for name in ("jobs", "runs", "workspace", "config", "settings"):
        assert not (ROOT / "scvi_core" / f"{name}.py").exists()
    assert (ROOT / "dashboard" / "runs.py").exists()
