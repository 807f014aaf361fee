"""Turn a config node (task, compressor, reader, or any node with a `_target_`) into its object.

Components are dataclasses whose fields carry no defaults: the YAML is the one source of values
and the field annotations say what each knob allows (core/knobs.py). Before anything is
instantiated, every node with a `_target_` (nested ones too, e.g. the steps of a chain) is
checked against its class: unset `???` values, unknown keys, wrong types and out-of-range values
are refused with one line naming the key and what is allowed. Nothing loads here (no model, no
data), so the sweeper can build every cell of a sweep before the first one runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import check_knobs


def build(node: DictConfig | dict[str, Any], group: str) -> Any:
    """The object `node` describes, its knobs checked first; PcbenchError on bad input."""
    values = checked(node, group)
    try:
        return instantiate(values, _convert_="all")
    except InstantiationException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, PcbenchError):
            raise cause from None
        target = str(values.get("_target_"))
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            # Only for classes that are not dataclasses (check_knobs covers those).
            bad = str(cause).split("unexpected keyword argument")[-1].strip(" '\"")
            allowed = ", ".join(k for k in values if not k.startswith("_")) or "(none)"
            name = target.rsplit(".", 1)[-1]
            raise PcbenchError(f"{group} {name!r} has no knob {bad!r}; allowed: {allowed}") from None
        raise PcbenchError(f"could not build {group} {target}: {type(cause).__name__}: {cause}") from None


def checked(node: DictConfig | dict[str, Any], prefix: str) -> dict[str, Any]:
    """`node` as plain Python values, converted and validated against its `_target_` class."""
    if isinstance(node, DictConfig):
        missing = sorted(OmegaConf.missing_keys(node))
        if missing:
            # OmegaConf names missing keys from the root of the config the node belongs to.
            key = missing[0] if missing[0].startswith(f"{prefix}.") else f"{prefix}.{missing[0]}"
            raise PcbenchError(f"{key} has no value (??? in its YAML); set it on the command line: {key}=...")
        try:
            values = OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as exc:
            raise PcbenchError(f"{prefix}: {' '.join(str(exc).split())}") from None
    else:
        values = node
    if not isinstance(values, dict) or not values.get("_target_"):
        raise PcbenchError(f"{prefix} config has no _target_ (the class to build); see conf/{prefix.split('.')[0]}/")
    return _check({str(k): v for k, v in values.items()}, prefix)


def _check(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    target = str(values["_target_"])
    try:
        cls = get_class(target)
    except Exception as exc:  # ImportError of the module or of one of its dependencies
        cause = _root_cause(exc)
        reason = f"{type(cause).__name__}: {cause}"
        raise PcbenchError(f"{prefix}._target_={target!r} cannot be imported: {reason}") from None
    # Nested components first, so an error names the innermost bad key.
    values = {key: _nested(value, f"{prefix}.{key}") for key, value in values.items()}
    if dataclasses.is_dataclass(cls):
        values = check_knobs(cls, values, prefix)
    return values


def _nested(value: Any, prefix: str) -> Any:
    if isinstance(value, dict) and value.get("_target_"):
        values = _check(value, prefix)
        _trial_build(values, prefix)
        return values
    if isinstance(value, dict):  # a mapping of components (a chain's named steps): each checked, named
        return {key: _nested(inner, f"{prefix}.{key}") for key, inner in value.items()}
    if isinstance(value, list | ListConfig):
        return [_nested(item, f"{prefix}[{i}]") for i, item in enumerate(value)]
    return value


def _trial_build(values: dict[str, Any], prefix: str) -> None:
    """Build a nested component on its own (cheap: nothing loads), so that its own checks (a budget
    rule between knobs) name its key, `compressor.steps.fine.rate`, not the top's."""
    try:
        instantiate(values, _convert_="all")
    except InstantiationException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, PcbenchError):
            group = prefix.split(".", 1)[0]
            raise PcbenchError(f"{prefix}: {str(cause).replace(f'{group}.', f'{prefix}.')}") from None
        # anything else: the whole tree's build reports it as before


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
