"""Write outputs so that an interrupted run never leaves a half file that looks complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import OutputError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the real suffix(es) so writers that choose a format from
    the extension (SimpleITK, reportlab) still work.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {path.parent}: {exc.strerror}.") from None
    tmp = path.with_name(f".{path.name.split('.')[0]}.partial-{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}. Check permissions and free disk space.") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)
