"""Composing pcbench's config outside a `pcbench` run, exactly as run.py composes it: one helper
for the Python API, the cell identity's variants, the manual's knob tables and the trainer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pcbench.conf import CONF_DIR


@contextmanager
def conf_search_path() -> Iterator[None]:
    """pcbench's configs as Hydra's search path; inside a running Hydra app, that app's own."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The whole config `pcbench OVERRIDES` runs (Hydra's errors as they come: callers word them)."""
    from hydra import compose as hydra_compose

    with conf_search_path():
        return hydra_compose("config", overrides=list(overrides))


def option_node(group: str, option: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The node of `group=option` with its YAML's defaults applied, open to new keys."""
    node = compose([f"{group}={option}", *overrides])[group]
    OmegaConf.set_struct(node, False)
    return node


def option_values(group: str, option: str) -> dict[str, Any]:
    """The knobs of `group=option` as plain values, interpolations left as written."""
    values = OmegaConf.to_container(option_node(group, option), resolve=False)
    assert isinstance(values, dict)
    return {str(k): v for k, v in values.items()}
