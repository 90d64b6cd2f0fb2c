"""The three layers import only downwards: views (app.py, pages/, ui/) → dashboard/ → scvi_core/.

Checked on the source (every import statement, parsed with ``ast``), so a lazy import inside a function counts too.
"""

import ast
import sys
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


ALLOWED_IN_PAGES = {"streamlit", "ui", "dashboard"}


def test_pages_import_only_streamlit_ui_and_dashboard():
    """A page draws: what it shows comes from ``ui`` (views, figures, Streamlit caches) and ``dashboard`` (state and
    decisions), never from ``scvi_core`` or a numerical library directly (the standard library is allowed)."""
    files = imported_packages("pages")
    offenders = {path: sorted(names - ALLOWED_IN_PAGES - set(sys.stdlib_module_names)) for path, names in files.items()}
    assert {path: names for path, names in offenders.items() if names} == {}


def drawing_names(tree: ast.Module) -> set[str]:
    """What a page may draw with: ``st`` and every name it imports from ``ui``."""
    names = {"st"}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ui":
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_every_function_of_a_page_draws_something(path):
    """Each function of a page uses Streamlit or a ``ui`` view, directly or through another function of the page
    that does: computing and deciding live in ``ui`` and ``dashboard``."""
    tree = ast.parse(path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    used = {name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} for name, node in functions.items()}
    drawing = {name for name, names in used.items() if names & drawing_names(tree)}
    while True:
        more = {name for name, names in used.items() if names & drawing} - drawing
        if not more:
            break
        drawing |= more
    assert sorted(set(functions) - drawing) == []


def imports_of(tree: ast.Module):
    """Every import statement of a module, inside functions too, except those under ``if TYPE_CHECKING`` (names for
    type hints, never run)."""
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def module_imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the module at ``path`` imports, now or lazily (:func:`imports_of`)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    base = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in imports_of(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = base.split(".")
            origin = ".".join(parts[:len(parts) - node.level + 1] if node.level else []) if node.level else ""
            origin = ".".join(filter(None, [origin, node.module or ""]))
            found.add(origin)
            found |= {f"{origin}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == package}


def test_no_import_circle():
    """No module of the three layers imports, directly or through others, a module that imports it back, not even
    lazily inside a function (such a circle works only while someone keeps that import lazy)."""
    graph = {}
    for package in ("scvi_core", "dashboard", "ui"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            graph[module] = module_imports(path, package)
    for module, targets in graph.items():  # importing a.b.c runs a/__init__ and a/b/__init__ first
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 2)} - ancestors
    graph = {module: {m for m in targets if m in graph and m != module} for module, targets in graph.items()}
    circles = []

    def visit(module, stack):
        if module in stack:
            circles.append(stack[stack.index(module):] + [module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, stack + [module])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [])
    assert circles == []
