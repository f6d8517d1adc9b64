"""Web app speed as a user feels it: time to the first rendered view, seconds per slice scroll.

A real ``covidct serve`` and Debian's Chromium (the browser tests' helpers).  The 512² ×
148 scan (``../shared/data/covid-ct-md/P001``, DICOM) is measured against a baseline in the
same run: the bundled 128² × 148 sample.  Numbers are printed and written to JSON, never
asserted.

    python benchmarks/web_benchmark.py [--output benchmarks/results/web-cpu-2core.json] [--scrolls 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CovidCT" / "Testing" / "Python"))
sys.path.insert(0, str(REPO / "CovidCT"))

import web_browser_helpers as web  # noqa: E402

FULL_SCAN = REPO.parent / "shared" / "data" / "covid-ct-md" / "P001"
POLL_S = 0.05
# Milliseconds from now until the left view's image is replaced (the server's next frame).
NEXT_FRAME_JS = """() => { const img = document.querySelector('#views img'); const before = img.src;
  const start = performance.now();
  window.__covidctNextFrame = new Promise(resolve => { const watch = new MutationObserver(() => {
    if (img.src !== before) { watch.disconnect(); resolve(performance.now() - start); } });
    watch.observe(img, {attributes: true, attributeFilter: ['src']}); }); }"""


def _wait_for(condition, timeout_s: float = 120.0) -> float:
    """Seconds until ``condition()`` holds."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError("the view never showed what was expected")
        time.sleep(POLL_S)
    return time.perf_counter() - start


def measure_scan(browser, url: str, relative, scrolls: int) -> dict:
    """``relative``: a path in the data folder, or None for the "bundled sample" button."""
    started = time.perf_counter()
    page = web.new_session_page(browser, url)
    tab_ready_s = time.perf_counter() - started
    if relative is not None:
        page.locator("input#path-input, #path-input input").fill(relative)
    opened = time.perf_counter()
    page.click("#open-sample" if relative is None else "#open-path")

    def views_show_ct() -> bool:
        if page.query_selector("#error"):
            raise RuntimeError(page.inner_text("#error"))
        return all(web.shows_ct(v) for v in web.view_pixels(page, settle_s=0))

    _wait_for(views_show_ct)
    first_view_s = time.perf_counter() - opened

    box = web.view_boxes(page)[0]
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    times = []
    for step in range(scrolls):
        before = web.view_pixels(page, settle_s=0.5)[0]
        page.evaluate(NEXT_FRAME_JS)
        page.mouse.wheel(0, 120 if step % 2 == 0 else -120)
        times.append(page.evaluate("() => window.__covidctNextFrame") / 1000.0)
        after = web.view_pixels(page, settle_s=0.3)[0]
        assert abs(after - before).mean() > 0.5, "the wheel did not change the slice"
    page.close()
    return {"tab_ready_s": round(tab_ready_s, 2), "first_rendered_view_s": round(first_view_s, 2),
            "scroll_s_median": round(statistics.median(times), 3),
            "scroll_s_max": round(max(times), 3), "scrolls": scrolls}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "latest.json"))
    parser.add_argument("--scrolls", type=int, default=10)
    args = parser.parse_args(argv)
    reason = web.missing_browser_reason()
    if reason:
        print(f"web benchmark skipped: {reason}")
        return 1
    if not FULL_SCAN.is_dir():
        print(f"web benchmark skipped: {FULL_SCAN} not found")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="covidct-web-bench-"))
    try:
        with web.running_server(FULL_SCAN.parent, scratch) as url, web.headless_chromium() as browser:
            baseline = measure_scan(browser, url, None, args.scrolls)
            full = measure_scan(browser, url, FULL_SCAN.name, args.scrolls)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratios = {key: round(full[key] / baseline[key], 2) for key in ("first_rendered_view_s", "scroll_s_median")
              if baseline[key]}
    report = {"benchmark": "web", "machine": {"cpu": platform.processor() or platform.machine(),
                                              "cores": __import__("os").cpu_count(),
                                              "python": platform.python_version()},
              "baseline_sample_128": baseline, "p001_512": full, "ratio_to_baseline": ratios}
    print(f"sample 128² x 148: first view {baseline['first_rendered_view_s']} s, "
          f"scroll {baseline['scroll_s_median']} s/step (tab ready {baseline['tab_ready_s']} s)")
    print(f"P001 512² x 148:   first view {full['first_rendered_view_s']} s, "
          f"scroll {full['scroll_s_median']} s/step (tab ready {full['tab_ready_s']} s)")
    print(f"ratio to baseline: {ratios}")
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
