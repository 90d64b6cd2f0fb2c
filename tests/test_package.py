"""The repository is a package: ``pip install .`` installs ``scvi_core`` (with its shipped PBMC demo), the dashboard's
packages and the ``scvi-dashboard`` command, with requirements.txt's pins as its dependencies. Installed here into a
folder of its own (``--target``, no dependencies, no download) and imported from another directory, so the checkout
itself is not what is imported."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pip_install_gives_an_importable_library_with_its_data_and_pins(tmp_path):
    source, target = tmp_path / "source", tmp_path / "installed"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, source / name)
    for package in ("scvi_core", "dashboard", "ui"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, cwd=tmp_path)
    check = ("import scvi_core, dashboard; from scvi_core.datasets import pbmc_3batches; "
             "print(scvi_core.__file__); print(pbmc_3batches().shape)")
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1] == "(2860, 2000)"
    (metadata,) = target.glob("scvi_dashboard-*.dist-info/METADATA")
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert [line.removeprefix("Requires-Dist: ") for line in metadata.read_text().splitlines()
            if line.startswith("Requires-Dist:")] == pins
    assert (target / "bin" / "scvi-dashboard").exists()
    # installed without the checkout's pages, the command says how to get them instead of failing obscurely
    result = subprocess.run([sys.executable, "-m", "dashboard"], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "pip install -e ." in result.stderr
