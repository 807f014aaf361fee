"""Credentials never reach a file or a terminal: `http://user:secret@host/v1` is written as
`http://***@host/v1`, and `?api_key=...`-style query values as `api_key=***`.

Applied where settings are written (config.yaml, metrics.json, cache keys' copies, W&B) and where
endpoint errors are said. The hash of a cell still depends on the real value (two endpoints with
different keys are two cells); only what is shown is masked.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_QUERY = re.compile(r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|password|secret|sig)=)[^&#\s]+",
                    re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the user-info part of URLs and secret query values masked."""
    if "://" not in text and "=" not in text:  # the common case, checked without a regex
        return text
    return _QUERY.sub(r"\g<name>***", _USERINFO.sub(r"\g<scheme>***@", text))


def redact_value(value: Any) -> Any:
    """Every string inside `value` (dicts and lists walked) redacted; `value` itself when nothing
    needed masking (so callers can tell with `is`)."""
    if isinstance(value, str):
        masked = redact(value)
        return value if masked == value else masked
    if isinstance(value, dict):
        items = {k: redact_value(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, list | tuple):
        inner = [redact_value(v) for v in value]
        return value if all(a is b for a, b in zip(inner, value)) else inner
    return value
