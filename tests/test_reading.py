"""Files read in bounded processes (issue 23): the result is what the readers give in this process, a reader past
its memory or time is stopped with a message in words, a crash is a message too, the service keeps working after
each, reads wait their turn, and the address-space limit stops a reader on its own. Uploads live in a session's
folder, which goes with the session."""

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from dashboard import handover, processes, reading
from dashboard.reading import ReadingService
from dashboard.session_folder import SessionFolder, remove_ended
from dashboard.workspace import Workspace
from scvi_core import io, simulate
from tests import datafiles
from tests.conftest import ROOT
from tests.test_app_load_data import assert_clean, sidebar, texts, upload


@pytest.fixture(scope="module")
def service():
    return ReadingService(memory_bytes=2**30, timeout_s=60)


@pytest.fixture(scope="module")
def dense_table(tmp_path_factory) -> Path:
    """A 19 MB dense CSV (5,000 cells × 2,000 genes): parsing it takes about a second and more than 80 MB."""
    path = tmp_path_factory.mktemp("table") / "dense.csv"
    path.write_bytes(datafiles.table_bytes(simulate(n_cells=5000, n_genes=2000, seed=0)))
    return path


def test_a_read_gives_what_the_readers_give_here_and_leaves_no_file(service, tmp_path):
    tiny = datafiles.tiny_counts()
    files = {name: tmp_path / name for name in datafiles.mtx_files(tiny)}
    for name, content in datafiles.mtx_files(tiny).items():
        files[name].write_bytes(content)
    (tmp_path / "x.h5ad").write_bytes(datafiles.h5ad_bytes(tiny))
    out = tmp_path / "session"
    out.mkdir()
    for paths in (list(files.values()), [tmp_path / "x.h5ad"]):
        read, notices = service.read(paths, out)
        here, here_notices = io.read_files(paths)
        assert notices == here_notices
        assert np.array_equal(read.X.toarray(), here.X.toarray())
        assert list(read.obs_names) == list(here.obs_names) and list(read.var_names) == list(here.var_names)
    assert not list(out.iterdir())  # the hand-over files are gone once read, in the session's folder and in memory
    assert not list(handover.IN_MEMORY.glob(f"{handover.ORPHAN_PREFIX}{os.getpid()}-*"))


def test_the_readers_message_comes_back_as_it_is(service, tmp_path):
    (tmp_path / "broken.h5ad").write_bytes(b"not an h5ad at all")
    with pytest.raises(io.DataLoadError, match="should be an AnnData .h5ad file .* looks like a text file"):
        service.read([tmp_path / "broken.h5ad"], tmp_path)


def test_a_reader_past_its_memory_is_stopped_with_a_message_and_the_service_goes_on(dense_table, tmp_path):
    small = ReadingService(memory_bytes=30 * 2**20, timeout_s=60)
    server_before = processes.resident_bytes(os.getpid())
    with pytest.raises(io.DataLoadError, match=r"needs more than 30 MB of memory.*SCVI_DASHBOARD_READER_MEMORY_GB"):
        small.read([dense_table], tmp_path)
    assert processes.resident_bytes(os.getpid()) - server_before < 50 * 2**20  # this process did not read it
    tiny = tmp_path / "t.csv"
    tiny.write_bytes(datafiles.table_bytes(datafiles.tiny_counts()))
    assert small.read([tiny], tmp_path)[0].shape == (30, 12)


def test_a_reader_past_its_time_is_stopped_with_a_message(dense_table, tmp_path):
    slow = ReadingService(memory_bytes=2**30, timeout_s=0.2)
    tiny = tmp_path / "t.csv"
    tiny.write_bytes(datafiles.table_bytes(datafiles.tiny_counts()))
    slow.read([tiny], tmp_path)  # the prepared reader's imports are done: what follows is the read alone
    start = time.monotonic()
    with pytest.raises(io.DataLoadError, match=r"took more than 0.2 s, so it was stopped.*SCVI_DASHBOARD_READ_TIMEOUT_S"):
        slow.read([dense_table], tmp_path)
    assert time.monotonic() - start < 2.0
    assert not reading.PREPARED.forked()  # killed, and reaped


def test_a_reader_that_dies_is_a_message_and_the_next_read_works(service, dense_table, tmp_path):
    def kill_it(progress):
        for pid in reading.PREPARED.forked():
            os.kill(pid, signal.SIGSEGV)

    with pytest.raises(io.DataLoadError, match="ended before it finished .* may be damaged"):
        service.read([dense_table], tmp_path, on_progress=kill_it)
    os.kill(reading.PREPARED._process.pid, signal.SIGKILL)  # even the prepared reader gone: it is started again
    assert service.read([dense_table], tmp_path)[0].shape == (5000, 2000)


def test_progress_is_reported_while_a_file_is_read(service, dense_table, tmp_path):
    seen = []
    service.read([dense_table], tmp_path, on_progress=seen.append)
    assert seen, "a read of a second or more reports its progress"
    assert [p.seconds for p in seen] == sorted(p.seconds for p in seen)
    assert any(p.bytes_read for p in seen) and all(p.file_bytes == dense_table.stat().st_size for p in seen)
    assert "Reading 'dense.csv' (19 MB)" in seen[-1].text() and "of memory so far" in seen[-1].text()


def test_reads_past_the_limit_at_once_wait_their_turn(dense_table, tmp_path):
    one = ReadingService(memory_bytes=2**30, timeout_s=60, at_once=1)
    one.start()
    waited, shapes = [], []
    first = threading.Thread(target=lambda: shapes.append(one.read([dense_table], tmp_path)[0].shape))
    first.start()
    time.sleep(0.3)
    shapes.append(one.read([dense_table], tmp_path, on_progress=waited.append)[0].shape)
    first.join()
    assert shapes == [(5000, 2000)] * 2
    assert waited[0].waiting and "Waiting for other sessions' files" in waited[0].text()


def h5ad_of_zeros(path: Path, shape: tuple[int, int]) -> Path:
    """A valid .h5ad whose dense X (float32 zeros, stored compressed and never written) takes a few kilobytes on
    disk and 4 bytes per value once read."""
    ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(shape[0])]),
               var=pd.DataFrame(index=[f"g{j}" for j in range(shape[1])])).write_h5ad(path)
    with h5py.File(path, "a") as handle:
        handle.create_dataset("X", shape=shape, dtype="float32", chunks=(100, 1000), compression="gzip")
        handle["X"].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return path


def test_the_address_space_limit_alone_stops_a_reader(tmp_path):
    """The backstop when no one watches: a reader forked with a 30 MB budget cannot allocate the 400 MB that an
    .h5ad's X needs, and says so."""
    zeros = h5ad_of_zeros(tmp_path / "zeros.h5ad", (2000, 50_000))
    forker = subprocess.Popen([sys.executable, "-m", "dashboard.reader"], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    request = {"paths": [str(zeros)], "orientation": "auto", "output": str(tmp_path / "r"),
               "memory_bytes": 30 * 2**20}
    out, _ = forker.communicate(json.dumps(request) + "\n", timeout=120)
    pid = int(out.split()[0])
    deadline = time.monotonic() + 60
    while processes.is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads((tmp_path / "r.json").read_text()) == {"out_of_memory": True}


def test_an_upload_is_stored_in_the_session_folder_once_and_goes_with_it(tmp_path):
    folder = SessionFolder(tmp_path)
    first = folder.store_upload([("../../a.csv", b"cell,g\nc,1\n")])
    assert first == [folder.path / "uploads" / first[0].parent.name / "a.csv"]  # no way out of the folder
    written = first[0].stat().st_mtime_ns
    assert folder.store_upload([("a.csv", b"cell,g\nc,1\n")]) == first and first[0].stat().st_mtime_ns == written
    changed = folder.store_upload([("a.csv", b"cell,g\nc,9\n")])  # same name and size, other bytes: written again
    assert changed[0].read_bytes() == b"cell,g\nc,9\n"
    second = folder.store_upload([("b.csv", b"cell,g\nc,2\n")])
    assert not changed[0].exists() and second[0].read_bytes() == b"cell,g\nc,2\n"  # one upload kept per session
    path = folder.path
    del folder
    gc.collect()
    assert not path.exists()


def test_folders_of_a_server_that_is_gone_and_of_ended_sessions_are_removed(tmp_path):
    orphan = tmp_path / "999999999-0123456789abcdef"  # above Linux's largest pid: no such process
    (orphan / "uploads").mkdir(parents=True)
    connected, ended = SessionFolder(tmp_path, key="connected-1"), SessionFolder(tmp_path, key="ended-2")
    assert not orphan.exists() and connected.path.exists() and ended.path.exists()
    remove_ended(tmp_path, is_live=lambda key: key == "connected-1")
    assert connected.path.exists() and not ended.path.exists()
    assert ended.store_upload([("a.csv", b"cell,g\nc,1\n")])[0].is_file()  # a session that comes back writes again


def test_a_workspace_keeps_its_folder_when_new_data_are_loaded(data_dir):
    workspace = Workspace()
    folder = workspace.folder.path
    workspace.load("tiny", datafiles.tiny_counts(), [])
    assert workspace.folder.path == folder and folder.is_dir()
    assert folder.is_relative_to(Path(os.environ["SCVI_DASHBOARD_SESSIONS_DIR"]))


def test_the_page_says_when_a_file_needs_more_memory_than_a_reader_may_use(app, dense_table, monkeypatch):
    small = ReadingService(memory_bytes=30 * 2**20, timeout_s=60)
    monkeypatch.setattr(reading, "_SERVICE", small)
    upload(app, {"dense.csv": dense_table.read_bytes()})
    assert_clean(app)
    assert "Reading 'dense.csv' needs more than 30 MB of memory" in texts(app.error)
    assert "nothing loaded yet" in sidebar(app)
    upload(app, {"t.h5ad": datafiles.h5ad_bytes(datafiles.tiny_counts())})  # the next upload reads as usual
    assert_clean(app)
    assert "30 × 12" in sidebar(app)
    stored = list((app.session_state["workspace"].folder.path / "uploads").glob("*/*"))
    assert [p.name for p in stored] == ["t.h5ad"]
