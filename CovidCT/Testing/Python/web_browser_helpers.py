"""Run ``covidct serve`` and Debian's Chromium for the browser tests and the web benchmark.

Nothing is mocked: a real server process on a free loopback port, real offscreen VTK
rendering, a real headless browser.  The pixel helpers read what the browser shows.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORE_DIR = HERE.parents[1]  # CovidCT/: covidct, CovidCTLib, covidct_web
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SERVER_START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 90_000
COLOURED_SPREAD = 60  # max - min channel: heatmap colours, never the grey CT


def chromium_path():
    return next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), shutil.which("chromium"))


def missing_browser_reason():
    """Why the browser tests cannot run here, or None (tools/run_tests.sh installs both)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (tools/run_tests.sh installs it)"
    try:
        import trame_slicer  # noqa: F401
    except ImportError:
        return "the web extra (trame-slicer) is not installed (tools/run_tests.sh installs it)"
    if chromium_path() is None:
        return "Debian's chromium is not installed (tools/run_tests.sh installs it)"
    return None


@contextmanager
def running_server(data_dir: Path, scratch: Path, max_analyses: int = 1):
    """``covidct serve`` on a free loopback port; every file it writes lands under ``scratch``."""
    from covidct_web.launcher import free_port, port_open

    port = free_port("127.0.0.1")
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=os.pathsep.join(
        [str(CORE_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    log = open(scratch / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "covidct", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--max-analyses", str(max_analyses), "--session-timeout", "3", "--device", "cpu"],
        cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while not port_open("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("covidct serve did not start:\n" + (scratch / "server.log").read_text())
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        log.close()


@contextmanager
def headless_chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(),
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def new_session_page(browser, url: str):
    """A tab on a new session, once its page is ready."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#open-sample")
    return page


def open_sample(page) -> None:
    page.click("#open-sample")
    page.wait_for_selector("#scan-info")


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the Vuetify select labelled ``label``."""
    page.locator(".v-select", has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_until_finished(page, timeout_s: float = 240) -> str:
    """Wait for the results or an error; returns the decision text."""
    page.wait_for_selector("#decision, #error", timeout=timeout_s * 1000)
    if page.query_selector("#error"):
        raise AssertionError("the analysis failed: " + page.inner_text("#error"))
    return page.inner_text("#decision").strip()


def view_boxes(page) -> list:
    """Bounding boxes of the two slice views (original, enhanced), left to right."""
    areas = page.locator("#views img").all()
    boxes = sorted((a.bounding_box() for a in areas if a.is_visible()), key=lambda b: b["x"])
    assert len(boxes) == 2, f"expected two views, found {len(boxes)}"
    return boxes


def view_pixels(page, settle_s: float = 1.0) -> list:
    """RGB arrays of the two views as the browser shows them (after renders settle)."""
    from PIL import Image

    time.sleep(settle_s)
    screen = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.int16)
    crops = []
    for box in view_boxes(page):
        x, y, w, h = (int(round(box[k])) for k in ("x", "y", "width", "height"))
        crops.append(screen[y:y + h, x:x + w])
    return crops


def coloured_share(rgb: np.ndarray) -> float:
    """Share of pixels whose channels differ a lot: heatmap colours (the CT is grey)."""
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return float(np.mean(spread > COLOURED_SPREAD))


def shows_ct(rgb: np.ndarray) -> bool:
    """A CT slice in a lung window: dark lungs and air, bright body and bone, lots of both."""
    grey = rgb.mean(axis=2)
    return bool(np.mean(grey < 60) > 0.05 and np.mean(grey > 150) > 0.05 and grey.std() > 40)
