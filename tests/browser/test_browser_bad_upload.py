"""One bad upload must not take the room down (issue 23), in a real browser: while one session trains the quick demo,
another uploads a 1 GiB zip bomb and every other hostile kind of tests/test_hostile_inputs.py, and is told within
5 s each time what was wrong; the training session finishes its run, the uploading session reads a good file next,
and its folder on disk goes once it has closed. (AppTest cannot run two sessions at once in one process, so this is
where a second session is seen working meanwhile.)"""

import re
import time

from tests import datafiles
from tests.browser.conftest import assert_no_exception, open_session, wait_until_idle
from tests.browser.test_browser_training import configure, open_page
from tests.test_hostile_inputs import HOSTILE, zip_bomb


def upload_files(page, paths) -> None:
    page.get_by_text("Upload files", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(p) for p in paths])
    page.get_by_role("button", name="Read uploaded files").click()


def test_hostile_uploads_are_refused_while_another_session_trains(browser, dashboard, tmp_path):
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bomb(1 << 30))
    good = tmp_path / "good.h5ad"
    good.write_bytes(datafiles.h5ad_bytes(datafiles.tiny_counts()))
    (trainer_context, trainer), (uploader_context, uploader) = (open_session(browser, dashboard.url) for _ in range(2))
    try:
        configure(trainer, 20)
        open_page(trainer, "Training")
        trainer.get_by_role("button", name="Start training").click()
        trainer.get_by_role("heading", name=re.compile(r"Run .*: running")).wait_for()

        kinds = {"1 GiB zip bomb": ([bomb], "declares it expands")}
        for number, (kind, (files, expected)) in enumerate(HOSTILE.items()):
            folder = tmp_path / str(number)
            folder.mkdir()
            for name, content in files.items():
                (folder / name).write_bytes(content)
            kinds[kind] = ([folder / name for name in files], expected)
        for kind, (paths, expected) in kinds.items():
            start = time.monotonic()
            upload_files(uploader, paths)
            uploader.locator('[data-testid="stAlert"]').filter(has_text=expected).wait_for()
            assert time.monotonic() - start < 5.0, kind
            wait_until_idle(uploader)
            assert_no_exception(uploader)
            assert "Demo (quick)" in uploader.locator('[data-testid="stSidebar"]').inner_text()  # nothing replaced
            while uploader.locator('[data-testid="stFileChipDeleteBtn"]').count():  # take the files out
                uploader.locator('[data-testid="stFileChipDeleteBtn"]').first.click()
                wait_until_idle(uploader)

        trainer.get_by_role("heading", name=re.compile(r"Run .*: finished")).wait_for(timeout=120_000)
        assert_no_exception(trainer)

        upload_files(uploader, [good])
        uploader.locator('[data-testid="stSidebar"]').get_by_text("30 × 12").wait_for()
        folders = {path.parent.parent.parent for path in dashboard.sessions_dir.glob("*/uploads/*/good.h5ad")}
        assert len(folders) == 1
    finally:
        trainer_context.close()
        uploader_context.close()
    context, _ = open_session(browser, dashboard.url)  # a new session: the folders of ended sessions go
    context.close()
    assert not any(folder.exists() for folder in folders)
