"""A room full of users: N browser sessions press Start at once on one server, then again, and again.

N headless Chromium sessions open the prepared quick demo and pick the Quick look preset; then, each round, Start
is pressed in each, one right after the other, and every run is waited for. Prints, per round: whether every run
was accepted (no refusal), whether they started in the order they were submitted and never overlapped (one slot),
the time from the first Start to the last run's end, and the web server's resident memory after the round. The
sessions stay open, so the memory can only grow with the finished runs, and it must not: they train in worker
processes and the server keeps nothing of them.

    python benchmarks/queue_load.py [--sessions 5] [--rounds 3]
    python benchmarks/queue_load.py --cluster [--sessions 5] [--rounds 2]

``--cluster`` runs the same load twice in one invocation: on the local backend with one slot, then with
``SCVI_DASHBOARD_CLUSTER`` pointing at a ``distributed.LocalCluster`` of two single-threaded workers started here,
and prints the ratio of the total wall times (goal ≤ 0.65) and how many runs trained at once on each.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.live_view_cost import dashboard_server, open_page  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, open_session, wait_until_idle  # noqa: E402


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def session(browser, url: str):
    context, page = open_session(browser, url, timeout_ms=180_000)
    open_page(page, "Model")
    page.get_by_role("button", name=re.compile("Quick look")).click()
    wait_until_idle(page)
    open_page(page, "Training")
    return context, page


def one_round(sessions: list, runs_dir: Path) -> dict:
    before = {p.name for p in runs_dir.iterdir()} if runs_dir.exists() else set()
    began = time.monotonic()
    refused = 0
    for _, page in sessions:
        wait_until_idle(page)  # the page reruns when its previous run ends: a click meanwhile would be lost
        followed = page.url
        page.get_by_role("button", name=re.compile("Start training|Add to the queue")).click()
        try:  # an accepted run is followed at once: its id replaces the previous one in the URL
            page.wait_for_url(lambda url, before=followed: "run=" in url and url != before, timeout=30_000)
        except Exception:  # noqa: BLE001 - a refusal follows no new run
            refused += 1
    run_ids = sorted(p.name for p in runs_dir.iterdir() if p.name not in before and (p / "status.json").exists())
    statuses = {}
    while len(statuses) < len(run_ids):
        for run_id in run_ids:
            status = json.loads((runs_dir / run_id / "status.json").read_text())
            if status.get("state") not in ("queued", "running"):
                statuses[run_id] = status
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    with sqlite3.connect(runs_dir / "queue.sqlite3") as db:  # the queue's own record: submitted, and given a slot
        jobs = [row for row in db.execute("SELECT run_id, started FROM jobs ORDER BY seq") if row[0] in run_ids]
    submitted = [run_id for run_id, _ in jobs]
    by_start = [run_id for run_id, _ in sorted(jobs, key=lambda job: job[1])]  # to the second in status.json
    return {"accepted": len(run_ids), "refused": refused, "states": sorted({s["state"] for s in statuses.values()}),
            "in_order": by_start == submitted, "at_once": most_at_once(statuses.values()), "seconds": elapsed}


def most_at_once(statuses) -> int:
    """The most runs that trained at the same time (a run that ended in the second another started does not
    count as overlapping it: the times are whole seconds)."""
    events = sorted([(s["started"], 1) for s in statuses] + [(s["ended"], -1) for s in statuses])
    most = running = 0
    for _, change in events:  # at equal times the end (-1) sorts first
        running += change
        most = max(most, running)
    return most


def load(args, extra_env: dict | None = None) -> float:
    """``args.rounds`` rounds of ``args.sessions`` sessions on a new server; the total seconds of the rounds."""
    from playwright.sync_api import sync_playwright

    total = 0.0
    with dashboard_server(extra_env) as (url, runs_dir, server_pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        sessions = [session(browser, url) for _ in range(args.sessions)]
        print(f"server with {args.sessions} sessions open, before any run: {resident_mb(server_pid):.0f} MB",
              flush=True)
        for round_number in range(1, args.rounds + 1):
            result = one_round(sessions, runs_dir)
            total += result["seconds"]
            print(f"round {round_number}: {result['accepted']} of {args.sessions} runs accepted, "
                  f"{result['refused']} refused, ended {'/'.join(result['states'])}, "
                  f"{'in the order submitted' if result['in_order'] else 'OUT OF ORDER'}, "
                  f"at most {result['at_once']} training at once, "
                  f"{result['seconds']:.0f} s; server {resident_mb(server_pid):.0f} MB", flush=True)
        for context, _ in sessions:
            context.close()
        browser.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cluster", action="store_true",
                        help="compare the local backend (one slot) with a LocalCluster of two workers")
    args = parser.parse_args()
    if not args.cluster:
        load(args)
        return
    from distributed import LocalCluster

    print("local backend, one slot:", flush=True)
    local = load(args, {"SCVI_DASHBOARD_TRAINING_SLOTS": "1"})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        print(f"Dask backend, LocalCluster of 2 workers at {cluster.scheduler_address}:", flush=True)
        dask = load(args, {"SCVI_DASHBOARD_CLUSTER": cluster.scheduler_address})
    print(f"total: local {local:.0f} s, cluster {dask:.0f} s: {dask / local:.2f}× (goal ≤ 0.65)")

if __name__ == "__main__":
    main()
