"""Credentials never reach a file or a terminal: `http://user:secret@host/v1` is written as
`http://***@host/v1`, `?api_key=...`-style query values as `api_key=***`, in Hydra's escaped form
too (`http\\://user\\:secret@host`, `api_key\\=...`, as its overrides.yaml writes them), and every
secret a reader registered (an API key read from the environment) as `***` wherever it appears, as
in an endpoint's error reply that echoes it.

Applied to everything pcbench and Hydra write or print: config.yaml, metrics.json, cache keys'
copies, W&B, the cell's .hydra/ files, the sweep's multirun.yaml, folder names, log lines (Hydra's
launch lines included) and error lines. The hash of a cell still depends on the real value (two
endpoints with different keys are two cells); only what is shown is masked.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*\\?://)[^/@\s]+@")
_QUERY = re.compile(r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|password|secret|sig)\\?=)[^&#\s,'\"]+",
                    re.IGNORECASE)
# Secret values this process holds (register_secret), masked wherever they appear.
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` in everything redacted from now on (an API key a reader read from the environment)."""
    if len(value) >= 6:  # shorter would mask ordinary words; no real key is that short
        _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with the user-info part of URLs, secret query values and registered secrets masked."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
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
