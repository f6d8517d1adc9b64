"""``covidct serve``: the front door that gives every browser tab its own session process.

Opening the printed URL starts a session server (:mod:`covidct_web.session_app`) on a
free port of the same host and redirects the tab there; that process holds the tab's
scene and work folder and stops when the tab has been closed for a while.  The launcher
reaps finished sessions, removes any work folder a crashed one left, and stops them all
when it stops.  Logs name sessions by number only: no paths, no patient data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import _MODULE_DIR

SESSION_START_TIMEOUT_S = 120
REAP_INTERVAL_S = 2.0

logger = logging.getLogger("covidct_web")


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=Path.cwd)
    max_analyses: int = 1
    session_timeout_s: int = 30
    device: str = "auto"
    work_root: Path | None = None  # default: a new temporary folder, removed at exit


@dataclass
class Session:
    number: int
    port: int
    work_dir: Path
    process: subprocess.Popen


class Launcher:
    def __init__(self, options: ServeOptions):
        self.options = options
        self.work_root = Path(options.work_root or tempfile.mkdtemp(prefix="covidct-web-"))
        self.owns_work_root = options.work_root is None
        self.queue_dir = self.work_root / "queue"
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.sessions: list[Session] = []
        self._count = 0

    def session_command(self, port: int, work_dir: Path) -> list:
        o = self.options
        return [sys.executable, "-m", "covidct_web.session_app", "--host", o.host, "--port", str(port),
                "--data-dir", os.fspath(o.data_dir), "--work-dir", os.fspath(work_dir),
                "--queue-dir", os.fspath(self.queue_dir), "--max-analyses", str(o.max_analyses),
                "--timeout", str(o.session_timeout_s), "--device", o.device]

    async def start_session(self) -> Session:
        self._count += 1
        port = free_port(self.options.host)
        work_dir = self.work_root / f"session-{self._count}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [_MODULE_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        process = subprocess.Popen(self.session_command(port, work_dir), env=env, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        session = Session(self._count, port, work_dir, process)
        self.sessions.append(session)
        logger.info("session %d starting", session.number)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SESSION_START_TIMEOUT_S
        while not port_open(self.options.host, port):
            if process.poll() is not None or loop.time() > deadline:
                raise RuntimeError("The session server did not start; see the server log.")
            await asyncio.sleep(0.2)
        return session

    def reap(self) -> None:
        for session in [s for s in self.sessions if s.process.poll() is not None]:
            shutil.rmtree(session.work_dir, ignore_errors=True)
            self.sessions.remove(session)
            logger.info("session %d ended", session.number)

    def stop_all(self) -> None:
        for session in self.sessions:
            if session.process.poll() is None:
                session.process.terminate()
        for session in self.sessions:
            try:
                session.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                session.process.kill()
        self.reap()
        if self.owns_work_root:
            shutil.rmtree(self.work_root, ignore_errors=True)

    # -- HTTP ----------------------------------------------------------------------------
    async def handle_new_tab(self, request):
        from aiohttp import web

        try:
            session = await self.start_session()
        except RuntimeError as exc:
            return web.Response(status=503, text=str(exc))
        raise web.HTTPFound(f"http://{request.url.host}:{session.port}/")

    def url(self) -> str:
        shown = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"http://{shown}:{self.options.port}/"

    async def run(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self.handle_new_tab)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.options.host, self.options.port).start()
        print(f"CovidCT web: open {self.url()} in a browser (one session per tab; Ctrl+C stops)",
              flush=True)
        try:
            while True:
                await asyncio.sleep(REAP_INTERVAL_S)
                self.reap()
        finally:
            await runner.cleanup()


def serve(options: ServeOptions) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    launcher = Launcher(options)
    try:
        asyncio.run(launcher.run())
    except KeyboardInterrupt:
        pass
    finally:
        launcher.stop_all()
    return 0
