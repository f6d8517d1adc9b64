"""Ways to run a prepared case: in this process (the error class recorded), in a real
process, cancelled by SIGTERM mid-run, or twice at once; and the command line and
environment those processes get."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

from bad_inputs.doubles import fake_models
from bad_inputs.framework import READY_MARKER, SUBPROCESS_TIMEOUT_S, Prepared, RunResult

# The covidct CLI with the doubles installed, for the cases that need a separate process.
SCRIPT = Path(__file__).resolve().parents[1] / "bad_inputs_cli.py"


def _spy_on_handlers(build_parser, raised: list):
    def build():
        parser = build_parser()
        for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public API
            for sub in action.choices.values():
                handler = sub.get_default("handler")
                if handler is not None:
                    sub.set_defaults(handler=_recording(handler, raised))
        return parser

    return build


def _recording(handler, raised: list):
    def run(args):
        try:
            return handler(args)
        except Exception as exc:
            raised.append(exc)
            raise

    return run


def run_in_process(prepared: Prepared) -> RunResult:
    """``covidct.cli.main(argv)`` here, stdout/stderr captured, the error class recorded.

    An exception escaping ``main`` (a traceback for the user) propagates to the caller.
    """
    from covidct import cli

    raised: list = []
    out, err = io.StringIO(), io.StringIO()
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(cli, "build_parser",
                                                  _spy_on_handlers(cli.build_parser, raised)))
            stack.enter_context(mock.patch.dict(os.environ, {k: str(v) for k, v in prepared.env.items()}))
            if prepared.fakes:
                stack.enter_context(fake_models())
            for patch in prepared.patches:
                stack.enter_context(patch())
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            code = cli.main([str(a) for a in prepared.argv])
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)  # analyze installs its own
    return RunResult(code, out.getvalue(), err.getvalue(), type(raised[0]) if raised else None)


def cli_command(prepared: Prepared, *flags) -> list:
    if prepared.fakes or flags:
        return [sys.executable, str(SCRIPT), *flags,
                *(["--fake-models"] if prepared.fakes else []), *map(str, prepared.argv)]
    return [sys.executable, "-m", "covidct.cli", *map(str, prepared.argv)]


def subprocess_env(prepared: Prepared) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in prepared.env.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_in_subprocess(prepared: Prepared) -> RunResult:
    """A real process: what a user at a terminal or the Slicer module sees."""
    done = subprocess.run(cli_command(prepared), capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S, env=subprocess_env(prepared))
    return RunResult(done.returncode, done.stdout, done.stderr)


def run_case(prepared: Prepared) -> RunResult:
    runner = prepared.runner or run_in_process
    return runner(prepared)


def run_cancelled_by_sigterm(prepared: Prepared) -> RunResult:
    """Start the analysis, wait until it is inside the lung-mask stage, send SIGTERM."""
    process = subprocess.Popen(cli_command(prepared, "--pause-after-lung-mask"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=subprocess_env(prepared))
    try:
        stdout_lines = []
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        for line in process.stdout:
            if READY_MARKER in line:
                break
            stdout_lines.append(line)
            if time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        rest_out, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return RunResult(process.returncode, "".join(stdout_lines) + rest_out, stderr)


def run_two_at_once(prepared: Prepared) -> RunResult:
    """The same command twice, concurrently, into ``output`` and ``output`` + "-b"."""
    second = Prepared(argv=[str(prepared.output) + "-b" if a == str(prepared.output) else a
                            for a in map(str, prepared.argv)], fakes=prepared.fakes, env=prepared.env)
    processes = [subprocess.Popen(cli_command(p), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=subprocess_env(p)) for p in (prepared, second)]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    code = max(abs(r[0]) for r in results)
    return RunResult(code, "".join(r[1] for r in results), "".join(r[2] for r in results))
