"""CI must test the project as a new user installs it: in the fresh virtual environment that ``.ci/run`` builds
from the requirements files, never in whatever environment the machine happens to have."""

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CI") != "true", reason="checks CI's environment; runs under CI=true")


def test_ci_runs_in_the_fresh_virtual_environment_of_ci_run():
    venv = os.environ.get("SCVI_CI_VENV")
    assert venv, "CI=true but SCVI_CI_VENV is unset: run the tests through .ci/run, which builds a fresh venv."
    assert sys.prefix != sys.base_prefix, "not running inside a virtual environment"
    assert Path(sys.prefix).resolve() == Path(venv).resolve()


def test_no_undeclared_package_is_installed():
    """orjson once made a test pass on a developer's machine only; nothing in the requirements pulls it in."""
    installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert "orjson" not in installed
