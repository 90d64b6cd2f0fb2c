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
