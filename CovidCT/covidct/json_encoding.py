"""JSON for results that hold numpy scalars and arrays (one encoder for every writer)."""

from __future__ import annotations

import json

import numpy as np


def json_default(value):
    """``json.dump(default=...)`` hook: numpy scalars/arrays become Python numbers/lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def to_json_text(data, indent: int = 2) -> str:
    return json.dumps(data, indent=indent, default=json_default)


def to_plain(data):
    """``data`` as JSON would give it back: numpy values become Python ones, tuples lists."""
    return json.loads(json.dumps(data, default=json_default))
