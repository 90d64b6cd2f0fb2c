"""The usage example in docs/models.md runs as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def test_usage_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    table, adata = namespace["table"], namespace["adata"]
    assert len(table) == adata.n_vars
    assert "X_scVI" in adata.obsm and "neighbors" in adata.uns
    assert (tmp_path / "my_autozi" / "model.pt").exists()


def test_math_to_code_table_names_code_that_exists():
    """Every ``module.name`` of docs/models.md's math-to-code table that starts with a module of ``scvi_core`` (e.g.
    ``zi._calls.prob_zero_inflated``, ``de._change_mode.sample_group``) is found there, so the table follows the
    code when files move or are renamed."""
    import importlib
    import pkgutil

    import scvi_core

    modules = {name.removeprefix("scvi_core.")
               for _, name, _ in pkgutil.walk_packages(scvi_core.__path__, "scvi_core.")}
    table = DOC.read_text().split("| symbol (seeds) |")[1].split("\n\n")[0]
    checked, missing = 0, []
    for token in re.findall(r"`([A-Za-z_][\w.]*)`", table):
        parts = token.removesuffix(".py").split(".")
        if token.endswith(".py") and len(parts) == 1:
            continue  # a file name (``nn.py``)
        known = [i for i in range(1, len(parts)) if ".".join(parts[:i]) in modules]
        if not known:
            continue
        split = max(known)
        target = importlib.import_module("scvi_core." + ".".join(parts[:split]))
        for attribute in parts[split:]:
            target = getattr(target, attribute, None)
        checked += 1
        if target is None:
            missing.append(token)
    assert checked >= 30 and missing == []


def test_cross_references_in_docstrings_name_code_that_exists():
    """Every Sphinx-style reference to this project's code in a docstring (``:mod:`scvi_core.de```,
    ``:func:`~dashboard.runs.RunStore.de_dir```…) names a module or object that exists, so that moving a file shows
    every sentence that pointed to it."""
    import importlib

    root = DOC.parents[1]
    files = [root / "app.py", *(p for folder in ("scvi_core", "dashboard", "ui", "pages", "tests", "benchmarks")
                                for p in (root / folder).rglob("*.py"))]
    missing = []
    for path in files:
        for match in re.finditer(r":(?:mod|func|class|meth|data|attr):`~?([\w.]+)(?: <([\w.]+)>)?`", path.read_text()):
            name = match.group(2) or match.group(1)
            if not name.startswith(("scvi_core", "dashboard", "ui")):
                continue
            parts, target = name.split("."), None
            for i in range(len(parts), 0, -1):
                try:
                    target, rest = importlib.import_module(".".join(parts[:i])), parts[i:]
                    break
                except ImportError:
                    continue
            for attribute in rest:
                target = getattr(target, attribute, None)
            if target is None:
                missing.append(f"{path.relative_to(root)}: {name}")
    assert missing == []
