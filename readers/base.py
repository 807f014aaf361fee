"""The reader interface: one batched `generate` over requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from core.errors import PcbenchError
from core.requests import Generation, Request
from core.tokenizer import HFTokenizer, Tokenizer, load_tokenizer


class Reader(ABC):
    generates: bool = True
    tokenizer: Tokenizer

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes an output (model, revision, dtype, window...): the cache key."""

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Generation]: ...

    def close(self) -> None:  # noqa: B027 - a hook: readers without a model keep nothing
        pass


def looks_local(name: str) -> bool:
    """A name meant as a folder on this machine rather than a hub id or a packaged alias."""
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def cannot_load(key: str, name: str, exc: BaseException) -> PcbenchError:
    """One line for a model or tokenizer that does not load, naming the knob that picks it."""
    if looks_local(name) and not Path(name).expanduser().exists():
        return PcbenchError(f"{key}={name!r}: no such folder; give an existing local folder, a hub id or 'smollm2'")
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    if "trust_remote_code" in reason:
        return PcbenchError(f"cannot load {key}={name!r}: it needs its own modeling code; set "
                            f"reader.trust_remote_code=true if you trust it")
    return PcbenchError(f"cannot load {key}={name!r} ({type(exc).__name__}: {reason}); "
                        f"with no network, give a local folder: {key}=PATH")


def reader_tokenizer(key: str, name: str, revision: str | None = None,
                     trust_remote_code: bool = False) -> HFTokenizer:
    """The tokenizer `name` names, or one PcbenchError line naming `key` (a config knob)."""
    try:
        return load_tokenizer(name, revision, trust_remote_code)
    except PcbenchError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # what from_pretrained raises for bad names
        raise cannot_load(key, name, exc) from None
