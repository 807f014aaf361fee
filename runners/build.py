"""Turn the task/compressor/reader config nodes into objects, with one-line errors."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from core.errors import PcbenchError


def build(node: DictConfig, group: str) -> Any:
    target = str(node.get("_target_", "")) if isinstance(node, DictConfig) else ""
    if not target:
        raise PcbenchError(f"{group} config has no _target_ (the class to build); see conf/{group}/")
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, PcbenchError):
            raise cause from None
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            bad = str(cause).split("unexpected keyword argument")[-1].strip(" '\"")
            allowed = ", ".join(knobs(target)) or "(none)"
            name = target.rsplit(".", 1)[-1]
            raise PcbenchError(f"{group} {name!r} has no knob {bad!r}; allowed: {allowed}") from None
        raise PcbenchError(f"could not build {group} {target}: {type(cause).__name__}: {cause}") from None


def knobs(target: str) -> list[str]:
    """The fields a target class accepts (dataclass fields), for error messages."""
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or isinstance(exc, InstantiationException):
        if exc.__cause__ is None:
            break
        exc = exc.__cause__
    return exc


def plain(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
