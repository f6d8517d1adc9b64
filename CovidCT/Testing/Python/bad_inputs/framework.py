"""The corpus's data model: what a case builds (:class:`Prepared`), what CovidCT must
answer (:class:`Expected`), what a run gave (:class:`RunResult`), and the registry
(:data:`CASES`, filled by the :func:`case` decorator in the ``cases`` modules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

SUBPROCESS_TIMEOUT_S = 180
READY_MARKER = "ROBUSTNESS-READY"


@dataclass(frozen=True)
class Expected:
    """What CovidCT must do: exit code 0 (success) or a specific error class and message.

    ``message`` is a regular expression searched in stderr for errors and in stdout for
    successes (e.g. a warning the user must see).
    """

    exit_code: int = 0
    error: Optional[type] = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class RunResult:
    exit_code: int
    stdout: str
    stderr: str
    error_class: Optional[type] = None  # known only for in-process runs


@dataclass
class Prepared:
    """A built case: the CLI arguments plus what the test must watch."""

    argv: list
    inputs: list = field(default_factory=list)    # files/folders that must stay byte-identical
    output: Optional[Path] = None                  # result location: absent after a failure
    env: dict = field(default_factory=dict)        # extra environment (e.g. COVIDCT_WEIGHTS_DIR)
    patches: list = field(default_factory=list)    # callables returning context managers (in-process)
    fakes: bool = False                            # stand-in models instead of the trained weights
    skip: Optional[str] = None                     # reason this case cannot run here
    check: Optional[Callable[["Prepared", RunResult], None]] = None  # extra checks on success
    runner: Optional[Callable[["Prepared"], RunResult]] = None       # custom way to run it


@dataclass
class Case:
    name: str
    topic: str
    description: str
    build: Callable[[Path], Prepared]
    expected: Expected
    slow: bool = False


CASES: dict = {}


def case(name: str, topic: str, expected: Expected, slow: bool = False):
    """Register a builder; its docstring is the case's description in the table."""

    def register(build):
        assert name not in CASES, name
        CASES[name] = Case(name, topic, " ".join((build.__doc__ or "").split()), build, expected, slow)
        return build

    return register
