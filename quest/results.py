"""A run's return value as JSON for the JobLog: capped in size, marked when it is not plain."""

from __future__ import annotations

import json
from typing import Any

MAX_RESULT_BYTES = 64 * 1024
REPR_MARKER = "quest:repr"
TRUNCATED_MARKER = "quest:truncated"


def capture(value: Any, *, limit: int = MAX_RESULT_BYTES) -> Any:
    """*value* if it is JSON and small; else a marked ``repr`` or a marked, truncated preview."""
    if value is None or isinstance(value, bool | int):
        return value
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
        if len(text) > limit:
            return {REPR_MARKER: text[:limit], TRUNCATED_MARKER: True, "size": len(text)}
        return {REPR_MARKER: text}
    if len(text.encode("utf-8")) > limit:
        return {TRUNCATED_MARKER: True, "preview": text[:limit], "size": len(text)}
    return json.loads(text) if not isinstance(value, str | int | float) else value
