"""The web app in a real browser: a whole read on the bundled sample, Cancel, bad inputs.

A real ``covidct serve`` (one process per tab, real analysis subprocesses, offscreen VTK
rendering) driven through Debian's Chromium by Playwright; the checks read the pixels
the browser shows.  ``COVIDCT_WEB_SCREENSHOT=PATH`` also saves the review screenshot the
README shows (nothing is written into the repository otherwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import psutil
import pytest

import web_browser_helpers as web
from bad_inputs import CASES  # the package registers every case
from bad_inputs.building import snapshot
from conftest import SAMPLE_SCAN

pytestmark = [pytest.mark.web, pytest.mark.skipif(web.missing_browser_reason() is not None,
                                                  reason=str(web.missing_browser_reason()))]

BAD_INPUT_CASES = ("modality_mr", "png_where_scan_needed", "empty_folder")
ANALYSIS_MARKER = "covidct.cli analyze"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The --data-dir: the sample plus the bad inputs of the CLI's robustness corpus."""
    root = tmp_path_factory.mktemp("data")
    (root / SAMPLE_SCAN.name).write_bytes(SAMPLE_SCAN.read_bytes())
    return root


@pytest.fixture(scope="module")
def bad_input_paths(data_dir) -> dict:
    """``{case name: path relative to the data dir}``, built by the corpus's own builders."""
    paths = {}
    for name in BAD_INPUT_CASES:
        folder = data_dir / name
        folder.mkdir()
        prepared = CASES[name].build(folder)
        paths[name] = Path(prepared.argv[1]).relative_to(data_dir).as_posix()  # argv: analyze INPUT ...
    return paths


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server_url(data_dir, scratch):
    with web.running_server(data_dir, scratch) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with web.headless_chromium() as chromium:
        yield chromium


def _analysis_processes(scratch: Path) -> list:
    """The analysis processes (and their children) this test's server started."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if ANALYSIS_MARKER in cmdline and str(scratch) in cmdline:
            found.append(process)
            found.extend(process.children(recursive=True))
    return found


def _click_bar(page, index: int) -> None:
    page.click(f"#score-chart [data-slice='{index}']")
    page.wait_for_function(f"document.querySelector('#current-slice')?.innerText === 'Slice {index}'")


def test_whole_read_on_the_sample(browser, server_url, tmp_path):
    page = web.new_session_page(browser, server_url)
    web.open_sample(page)
    web.choose(page, "Scale", "2")  # enhanced x2: the whole path, in half the time of x4
    page.click("#analyze")
    page.wait_for_selector("#stage:has-text('%')")  # the stage is named while it runs
    decision = web.wait_until_finished(page)
    assert decision == "COVID-19"  # P001 is RT-PCR-confirmed COVID-19
    results = page.inner_text("#results")
    for expected in ("COVID-19 probability", "sensitivity", "Lung involvement", "severity score",
                     "CO-RADS-style suggestion"):
        assert expected in results

    bars = page.locator("#score-chart [data-slice]")
    scores = {int(b.get_attribute("data-slice")): b.get_attribute("title") for b in bars.all()}
    assert len(scores) == 148
    quiet = min((i for i, t in scores.items() if not t.endswith("not scored") and float(t.split(": ")[1]) < 0.1),
                key=lambda i: abs(i - 74))
    _click_bar(page, quiet)
    quiet_views = web.view_pixels(page)

    page.click("#most-suspicious")
    page.wait_for_function(f"document.querySelector('#current-slice')?.innerText !== 'Slice {quiet}'")
    hot_slice = int(page.inner_text("#current-slice").split()[-1])
    assert float(scores[hot_slice].split(": ")[1]) >= 0.5
    hot_views = web.view_pixels(page)
    for quiet_view, hot_view in zip(quiet_views, hot_views):
        assert web.shows_ct(hot_view) and web.shows_ct(quiet_view)
        assert abs(hot_view - quiet_view).mean() > 3  # the slice changed
        assert web.coloured_share(hot_view) > 0.01  # heatmap colours where the score is high
        assert web.coloured_share(hot_view) > 5 * web.coloured_share(quiet_view)
    if os.environ.get("COVIDCT_WEB_SCREENSHOT"):
        page.screenshot(path=os.environ["COVIDCT_WEB_SCREENSHOT"])

    page.locator("input#heatmap-switch, #heatmap-switch input").click()
    off_views = web.view_pixels(page)
    for hot_view, off_view in zip(hot_views, off_views):
        assert web.shows_ct(off_view)
        # Only the thin lesion outlines stay coloured.
        assert web.coloured_share(off_view) < 0.2 * web.coloured_share(hot_view)

    with page.expect_download() as download:
        page.click("#downloads a:has-text('PDF report')")
    pdf = tmp_path / "report.pdf"
    download.value.save_as(pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "COVID-19" in text and "research" in text.lower()
    links = {a.inner_text(): a.evaluate("a => a.href") for a in page.locator("#downloads a").all()}
    for label in ("result.json", "report_per_slice.csv", "enhanced volume (NRRD)", "heatmap volume (NRRD)",
                  "lung mask volume (NRRD)"):
        response = page.request.get(links[label])
        assert response.ok and len(response.body()) > 100, label
    assert page.request.get(links["result.json"]).json()["decision"] == decision
    page.close()


def test_cancel_kills_the_analysis_and_the_server_keeps_serving(browser, server_url, scratch):
    page = web.new_session_page(browser, server_url)
    web.open_sample(page)
    page.click("#analyze")
    page.wait_for_selector("#stage:has-text('%')")
    running = _analysis_processes(scratch)
    assert running, "the analysis runs in its own process"
    page.click("#cancel")
    page.wait_for_selector("#stage:has-text('cancelled')")
    gone, alive = psutil.wait_procs(running, timeout=10)
    assert not alive and not _analysis_processes(scratch)
    assert page.is_enabled("#analyze")
    page.click("#window-mediastinum")  # the same session still answers
    other = web.new_session_page(browser, server_url)  # and the server takes new tabs
    web.open_sample(other)
    other.close()
    page.close()


def test_upload_opens_the_scan(browser, server_url, scratch):
    page = web.new_session_page(browser, server_url)
    page.set_input_files("input[type=file]:not([webkitdirectory])", str(SAMPLE_SCAN))
    page.wait_for_selector("#scan-info")
    assert "148 slices of 128 × 128" in page.inner_text("#scan-info")
    assert all(web.shows_ct(view) for view in web.view_pixels(page))
    page.close()


def test_wheel_scrolls_both_linked_views(browser, server_url):
    page = web.new_session_page(browser, server_url)
    web.open_sample(page)
    before = web.view_pixels(page)
    box = web.view_boxes(page)[0]
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(5):
        page.mouse.wheel(0, 120)
        time.sleep(0.2)
    after = web.view_pixels(page)
    assert all(abs(a - b).mean() > 0.5 for a, b in zip(after, before)), "both views moved"
    page.close()


def test_second_analysis_waits_in_line(browser, server_url):
    """The server runs one analysis at a time here (--max-analyses 1): a second tab queues."""
    first, second = (web.new_session_page(browser, server_url) for _ in range(2))
    for page in (first, second):
        web.open_sample(page)
    first.click("#analyze")
    first.wait_for_selector("#stage:has-text('%')")
    second.click("#analyze")
    second.wait_for_selector("#stage:has-text('waiting: 1 analysis(es) ahead')")
    first.click("#cancel")
    second.wait_for_selector("#stage:has-text('%')")  # its turn came
    second.click("#cancel")
    second.wait_for_selector("#stage:has-text('cancelled')")
    first.close()
    second.close()


@pytest.fixture(scope="module")
def path_page(browser, server_url):
    """One tab for the typed-path cases (each open replaces the previous message)."""
    page = web.new_session_page(browser, server_url)
    yield page
    page.close()


def _open_typed_path(page, relative: str, message_pattern: str) -> str:
    from playwright.sync_api import expect

    page.locator("input#path-input, #path-input input").fill(relative)
    page.click("#open-path")
    expect(page.locator("#error")).to_contain_text(re.compile(message_pattern), timeout=web.PAGE_TIMEOUT_MS)
    return page.inner_text("#error")


@pytest.mark.parametrize("name", BAD_INPUT_CASES)
def test_bad_input_gets_the_cli_message(path_page, data_dir, bad_input_paths, name):
    before = snapshot([data_dir])
    _open_typed_path(path_page, bad_input_paths[name], CASES[name].expected.message)
    assert not path_page.is_enabled("#analyze")
    assert snapshot([data_dir]) == before  # nothing written next to the input


def test_path_outside_the_data_dir_is_refused(path_page, data_dir, tmp_path):
    outside = tmp_path / "outside.nrrd"
    outside.write_bytes(SAMPLE_SCAN.read_bytes())
    relative = os.path.relpath(outside, data_dir)
    assert relative.startswith("..")
    _open_typed_path(path_page, relative, "outside the data folder")
    assert not path_page.is_enabled("#analyze")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.nrrd"]


def test_closed_tabs_leave_no_work_folders(browser, server_url, scratch, path_page):
    path_page.close()  # every tab of this module is closed now
    page = web.new_session_page(browser, server_url)
    web.open_sample(page)
    page.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        roots = [p for p in scratch.glob("covidct-web-*") if p.is_dir()]
        sessions = [s for root in roots for s in root.glob("session-*")]
        if not sessions:
            break
        time.sleep(0.5)
    assert not sessions, sessions


def test_server_log_names_no_scan(server_url, scratch, data_dir):
    """Scan names and paths (which may identify a patient) never reach the log."""
    log = (scratch / "server.log").read_text()
    assert "scan opened" in log and "analysis done" in log  # the log is there, and says what happened
    for name in [SAMPLE_SCAN.name, "P001", str(data_dir), *BAD_INPUT_CASES]:
        assert name not in log, name
