"""What watching costs: the quick demo trained from a real headless Chromium, with the Training page open and with
the browser on another page, alternately, on one ``streamlit run`` server.

Each run is what a new user does: the dashboard opens on the prepared quick demo, Model → "Quick look", Training →
Start. For the unwatched runs the tab then goes to the Load data page at once. Figures come from the run's own
status.json: the training loop's seconds (``train_seconds``) and the worker's wall time (data, model, saving).
Also prints the estimate the Training page showed before Start against the actual time from Start to the end.

    python benchmarks/live_view_cost.py [--repeats 2] [--model AUTOZI]

Needs Debian's /usr/bin/chromium and playwright (requirements-dev.txt). Run it on a quiet machine: on 2 shared
cores, anything else running changes both times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    open_session,
    wait_until_healthy,
)
from tests.browser.conftest import wait_until_idle as idle  # noqa: E402

MODEL_LABELS = {"AUTOZI": "AutoZI", "SCVI": "scVI"}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the browser, the dashboard server and the training workers (from /proc)."""
    totals = {"browser": 0.0, "server": 0.0, "worker": 0.0}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = ("worker" if b"dashboard.worker" in cmdline else "server" if b"streamlit" in cmdline
                else "browser" if b"chromium" in cmdline else None)
        if kind:
            totals[kind] += (int(fields[11]) + int(fields[12])) / TICKS
    return totals


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    idle(page)


@contextmanager
def dashboard_server(extra_env: dict | None = None):
    """``streamlit run app.py`` on a free port with fresh data, runs and cache folders, and ``extra_env``: (url, runs
    folder, pid)."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / "data").mkdir()
    port = free_port()
    env = os.environ | {"SCVI_DASHBOARD_DATA_DIR": str(tmp / "data"), "SCVI_DASHBOARD_RUNS_DIR": str(tmp / "runs"),
                        "SCVI_DASHBOARD_CACHE_DIR": str(tmp / "cache")}  # a new server: its first estimate calibrates
    env |= extra_env or {}
    log = tmp / "streamlit.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                   "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log)
        yield url, tmp / "runs", server.pid
    finally:
        server.terminate()
        server.wait(10)


def one_run(browser, url: str, runs_dir: Path, model: str, preset: str, watched: bool) -> dict:
    context, page = open_session(browser, url, timeout_ms=120_000)
    open_page(page, "Model")
    page.locator('[data-testid="stRadio"]').get_by_text(MODEL_LABELS[model], exact=True).click()
    idle(page)
    page.get_by_role("button", name=re.compile(preset)).click()
    idle(page)
    open_page(page, "Training")
    shown = page.get_by_text(re.compile(r"on this server's")).first.inner_text()
    estimate = re.search(r"; (about [^;]*?) on this server's", shown).group(1)
    before = {p.name for p in runs_dir.iterdir()} if runs_dir.exists() else set()
    cpu_before = cpu_seconds()
    page.get_by_role("button", name=re.compile("Start training|Add to the queue")).click()
    clicked = time.monotonic()
    page.get_by_role("heading", name=re.compile(r"Run .*: (queued|running)")).wait_for()
    run = next(p for p in runs_dir.iterdir() if p.name not in before and (p / "status.json").exists())
    if not watched:
        open_page(page, "Load data")
    while json.loads((run / "status.json").read_text()).get("state") in ("queued", "running"):
        time.sleep(0.1)
    actual = time.monotonic() - clicked
    cpu = {kind: used - cpu_before.get(kind, 0.0) for kind, used in cpu_seconds().items()}
    if watched:
        page.get_by_role("heading", name=re.compile(r"Run .*: (finished|stopped)")).wait_for()
    context.close()
    status = json.loads((run / "status.json").read_text())
    return {"train": status["train_seconds"], "wall": status["wall_seconds"], "epochs": status["epoch"],
            "actual": actual, "estimate": estimate, "state": status["state"], "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=list(MODEL_LABELS), default="AUTOZI")
    parser.add_argument("--preset", default="Quick look", help="the preset button's label (or its start)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = {True: [], False: []}
    with dashboard_server() as (url, runs_dir, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        runs = [("first run", False)] + [(None, watched) for _ in range(args.repeats) for watched in (True, False)]
        for label, watched in runs:  # the first run warms up (its estimate is the calibration's): not counted
            result = one_run(browser, url, runs_dir, args.model, args.preset, watched)
            if label is None:
                results[watched].append(result)
            label = label or ("watched" if watched else "elsewhere")
            print(f"{label:9s}: training {result['train']:.1f} s, worker {result['wall']:.1f} s, Start → end "
                  f"{result['actual']:.1f} s ({result['epochs']} epochs, {result['state']}); the page estimated "
                  f"{result['estimate']}; CPU s: " + ", ".join(f"{kind} {used:.1f}"
                                                             for kind, used in result["cpu"].items()), flush=True)
        browser.close()
    for key in ("train", "actual"):
        watched, elsewhere = (statistics.median(r[key] for r in results[w]) for w in (True, False))
        print(f"median {key:6s}: watched {watched:.1f} s, elsewhere {elsewhere:.1f} s, ratio {watched / elsewhere:.2f}")


if __name__ == "__main__":
    main()
