"""The trame-slicer server of one browser session: open, Analyze, review, download.

Started by :mod:`covidct_web.launcher`, one process per tab.  The page is only wiring:
every action calls :class:`covidct_web.review_session.ReviewSession`, which calls
``CovidCTLib``.  The analysis runs in its own process (``AnalysisProcess``); a poll on the
event loop follows it, so the server keeps answering while it runs.  When the tab has
been gone for ``--timeout`` seconds the server stops and removes its work folder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import sys
from pathlib import Path

from covidct.errors import CovidCTError

from . import _MODULE_DIR  # noqa: F401 - puts CovidCTLib on sys.path
from .analysis_queue import AnalysisQueue
from .data_folder import DataFolder
from .page import build_page
from .review_session import ReviewSession, read_scan

SAMPLE_SCAN = Path(_MODULE_DIR) / "Resources" / "SampleData" / "covidct-sample-P001-128.nrrd"
COMPARE_LAYOUT = "CovidCT compare"
POLL_INTERVAL_S = 0.2
UPLOAD_FOLDER = "uploads"

logger = logging.getLogger("covidct_web.session")


def compare_views_layout():
    """Original (Red, left) | enhanced (Yellow, right): the slice views ``compare_layout`` drives."""
    from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

    from CovidCTLib.compare_layout import ENHANCED_VIEW, ORIGINAL_VIEW

    return Layout(LayoutDirection.Horizontal, [
        ViewLayoutDefinition.slice_view("Axial", label=ORIGINAL_VIEW, color="#F34A33"),
        ViewLayoutDefinition.slice_view("Axial", label=ENHANCED_VIEW, color="#EDD54C")])


def _score_bars(result, threshold: float) -> list:
    """One bar per slice for the page's chart (height in % of the 0..1 score axis)."""
    from CovidCTLib.slice_scores import score_of

    bars = []
    for entry in result.per_slice:
        score = score_of(entry)
        scored = score == score  # not NaN
        bars.append({"i": int(entry["index"]), "h": round(100 * score, 1) if scored else 0,
                     "s": f"{score:.2f}" if scored else "not scored",
                     "hot": bool(scored and score >= threshold)})
    return bars


class SessionApp:
    """State and controller of one session's page."""

    def __init__(self, server, data_folder: DataFolder, work_dir: Path, queue: AnalysisQueue,
                 device: str = "auto"):
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        self.server = server
        self.state = server.state
        self.data_folder = data_folder
        self.queue = queue
        self.ticket = None
        server.enable_module(trame_slicer_module)
        self.files_route = f"files-{secrets.token_urlsafe(12)}"  # downloads: this session's folder only
        server.enable_module({"serve": {self.files_route: str(work_dir)}})

        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, server, slice_view_ui_f=_no_view_buttons)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, server)
        self.layout_manager.register_layout(COMPARE_LAYOUT, compare_views_layout())
        self.layout_manager.set_layout(COMPARE_LAYOUT)
        self.session = ReviewSession(self.slicer_app.scene, work_dir, device=device)

        self._set_initial_state()
        build_page(server, self)
        self.state.change("heat_visible", "heat_opacity", "heat_threshold")(self._on_heatmap_changed)
        server.controller.on_server_ready.add(self._start_polling)
        server.controller.on_server_exited.add(lambda **_: self.close())

    # -- state ---------------------------------------------------------------------------
    def _set_initial_state(self) -> None:
        s = self.state
        s.trame__title = "CovidCT"
        s.update({
            "browse_path": "", "browse_entries": [], "browse_parent": None,
            "scan_name": "", "scan_info": "", "scan_loaded": False, "opening": False,
            "error_text": "", "warnings": [],
            "enhancement": "auto", "scale": "auto",
            "busy": False, "progress": 0, "stage": "", "queue_position": 0,
            "result_lines": [], "decision": "", "has_result": False,
            "heat_visible": True, "heat_opacity": self.session.heatmap.opacity,
            "heat_threshold": self.session.heatmap.threshold,
            "slice_bars": [], "current_slice": -1, "key_slices": [], "downloads": [],
        })
        self.browse("")

    def _show_error(self, message: str) -> None:
        self.state.error_text = message

    def _render(self) -> None:
        for view in self.slicer_app.view_manager.get_slice_views():
            view.schedule_render()

    def _fit_views(self) -> None:
        for view in self.slicer_app.view_manager.get_slice_views():
            view.fit_view_to_content()
        self._render()

    # -- opening -------------------------------------------------------------------------
    def browse(self, relative: str) -> None:
        try:
            entries = self.data_folder.list(relative)
        except CovidCTError as exc:
            self._show_error(str(exc))
            return
        self.state.update({"browse_path": relative, "browse_entries": [e.to_dict() for e in entries],
                           "browse_parent": self.data_folder.parent(relative) if relative else None})

    async def browse_or_open(self, entry: dict) -> None:
        if entry.get("folder"):
            self.browse(entry["path"])
        else:
            await self.open_relative(entry["path"])

    async def open_relative(self, relative: str) -> None:
        """Open a scan from the data folder (files only through :class:`DataFolder`)."""
        try:
            path = self.data_folder.resolve(relative)
        except CovidCTError as exc:
            self._show_error(str(exc))
            return
        await self.open_path(path, Path(relative).name or "data folder")

    async def open_sample(self) -> None:
        await self.open_path(SAMPLE_SCAN, "bundled sample (P001, 128²)")

    async def open_uploaded(self, files: list) -> None:
        from trame.app.file_upload import ClientFile

        folder = self.session.work_dir / UPLOAD_FOLDER
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        written = []
        for file in files:
            client_file = ClientFile(file)
            target = folder / Path(client_file.name).name  # a bare name: nothing outside the folder
            target.write_bytes(client_file.content)
            written.append(target)
        path = written[0] if len(written) == 1 else folder  # several files: a DICOM series
        await self.open_path(path, "uploaded scan")

    async def open_path(self, path: Path, label: str) -> None:
        if self.state.busy:  # running or waiting in line
            self._show_error("An analysis is running: cancel it before opening another scan.")
            return
        with self.state:
            self.state.update({"opening": True, "error_text": "", "warnings": []})
        try:
            # Reading and checking the scan is numpy work: off the event loop.
            volume, warnings = await asyncio.get_running_loop().run_in_executor(None, read_scan, path)
        except CovidCTError as exc:
            with self.state:
                self.state.update({"opening": False, "error_text": str(exc)})
            return
        opened = self.session.show_scan(volume, warnings)
        self._fit_views()
        with self.state:
            self.state.update({
                "opening": False, "scan_loaded": True, "scan_name": label, "warnings": opened.warnings,
                "scan_info": f"{opened.shape_kji[0]} slices of {opened.shape_kji[2]} × {opened.shape_kji[1]}, "
                             f"{opened.spacing_mm[2]:.2f} mm apart",
                "has_result": False, "result_lines": [], "decision": "", "slice_bars": [],
                "downloads": [], "current_slice": -1, "key_slices": [], "progress": 0, "stage": ""})
        logger.info("scan opened")  # never the path or name: they may identify the patient

    # -- analysis ------------------------------------------------------------------------
    def analyze(self) -> None:
        try:
            self.session.prepare_analysis(self.state.enhancement, self.state.scale)
        except (ValueError, RuntimeError) as exc:
            self._show_error(str(exc))
            return
        self.ticket = self.queue.join()
        self.state.update({"busy": True, "progress": 0, "stage": "waiting", "error_text": "",
                           "has_result": False, "downloads": []})
        logger.info("analysis queued")

    def cancel(self) -> None:
        self.session.cancel()
        self.queue.leave(self.ticket)
        self.ticket = None
        self.state.update({"busy": False, "stage": "cancelled", "queue_position": 0})
        logger.info("analysis cancelled")

    def tick(self) -> None:
        """Follow the views, the queue and the analysis process (called from the event loop)."""
        if self.state.scan_loaded:
            shown = self.session.slice_shown()
            self.state.current_slice = -1 if shown is None else shown
        run = self.session.run
        if run is None or not self.state.busy:
            return
        if run.state.value == "idle":
            position = self.queue.position(self.ticket)
            self.state.queue_position = position
            if position:
                self.state.stage = f"waiting: {position} analysis(es) ahead"
                return
            run.start()
        state = run.poll()
        self.state.update({"progress": round(100 * run.progress), "stage": run.stage})
        if not state.finished:
            return
        self.queue.leave(self.ticket)
        self.ticket = None
        self.state.busy = False
        if state.value == "failed":
            self._show_error(run.error_message)
            logger.info("analysis failed")
        elif state.value == "done":
            self._show_result()
            logger.info("analysis done")

    def _show_result(self) -> None:
        result = self.session.result
        self.session.set_heatmap(self.state.heat_visible, self.state.heat_opacity, self.state.heat_threshold)
        self._fit_views()
        self.state.update({
            "has_result": True, "decision": result.decision, "result_lines": result.summary_lines(),
            "warnings": list(result.analysis.warnings), "key_slices": self.session.key_slices,
            "slice_bars": _score_bars(result, result.threshold),
            "downloads": [{"label": label, "href": f"{self.files_route}/{path}", "name": Path(path).name}
                          for label, path in self.session.downloads()]})

    def _start_polling(self, **_) -> None:
        async def poll_forever():
            while True:
                await asyncio.sleep(POLL_INTERVAL_S)
                try:
                    with self.state:
                        self.tick()
                except Exception:  # noqa: BLE001 - the page must keep working
                    logger.exception("poll failed")
        asyncio.ensure_future(poll_forever())

    # -- review --------------------------------------------------------------------------
    def _on_heatmap_changed(self, heat_visible, heat_opacity, heat_threshold, **_) -> None:
        self.session.set_heatmap(bool(heat_visible), float(heat_opacity), float(heat_threshold))
        self._render()

    def set_window(self, preset: str) -> None:
        self.session.set_window(preset)
        self._render()

    def _after_jump(self, index) -> None:
        if index is not None:
            self.state.current_slice = int(index)
        self._render()

    def jump_to(self, index) -> None:
        self._after_jump(self.session.jump_to_slice(int(index)))

    def most_suspicious(self) -> None:
        self._after_jump(self.session.jump_to_most_suspicious())

    def step_key_slice(self, step) -> None:
        self._after_jump(self.session.step_key_slice(int(step)))

    def close(self) -> None:
        self.queue.leave(self.ticket)
        self.session.close()


def _no_view_buttons(server, view_id, view) -> None:
    """Views without trame-slicer's gutter (3D toggles make no sense in this review)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="covidct_web.session_app",
                                     description="One CovidCT web session (started by covidct serve).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--work-dir", required=True, help="this session's folder (removed at exit)")
    parser.add_argument("--queue-dir", required=True)
    parser.add_argument("--max-analyses", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=30, help="seconds without a tab before stopping")
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # URLs stay out of the log
    from trame.app import get_server

    work_dir = Path(args.work_dir)
    server = get_server(name=f"covidct-{work_dir.name}", client_type="vue3")
    app = SessionApp(server, DataFolder(args.data_dir), work_dir,
                     AnalysisQueue(args.queue_dir, args.max_analyses), device=args.device)
    try:
        server.start(host=args.host, port=args.port, open_browser=False, show_connection_info=False,
                     timeout=args.timeout, disable_logging=True)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
