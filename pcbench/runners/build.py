"""A cell's components from its composed config: the top-level keys checked, then task, compressor
and reader built (core/build.py checks every knob first; nothing loads here, so the sweeper can
build every cell of a sweep before the first one runs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pcbench.core.build import build
from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Pattern, Range, check_knobs

GROUPS = ("task", "compressor", "reader")
# A study names a folder under outputs/ and multirun/: one plain name, never a path.
PLAIN_NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9._-]*", "a plain name (letters, digits, '.', '_', '-')")


@dataclass
class RunSettings:
    """The top-level keys of conf/config.yaml, checked like every knob (values from the YAML)."""

    study: Annotated[str, PLAIN_NAME]
    rerun: bool
    stage: Literal["all", "compress"]
    cache_dir: Annotated[str, Pattern(r"(?s).*\S.*", "a folder (PCBENCH_CACHE, or a path)")]
    compress_chunk: Annotated[int, Range(1)]


@dataclass
class WandbSettings:
    enabled: bool
    project: str
    entity: str | None


def check_run_settings(cfg: DictConfig) -> None:
    """The top-level keys, converted and checked in place (`stage=compres` and `rerun=maybe` are refused)."""
    for cls, node, prefix in ((RunSettings, cfg, ""), (WandbSettings, cfg.wandb, "wandb")):
        names = [f.name for f in dataclasses.fields(cls)]
        try:
            values = {name: OmegaConf.select(node, name, throw_on_missing=True) for name in names}
        except OmegaConfBaseException as exc:
            raise PcbenchError(" ".join(str(exc).split())) from None
        checked = check_knobs(cls, values, prefix)
        for name in names:
            if node[name] != checked[name]:
                node[name] = checked[name]


def build_cell(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """Task, compressor and reader of a composed config (checked, built, nothing loaded)."""
    check_run_settings(cfg)
    task, compressor, reader = (build(cfg[group], group) for group in GROUPS)
    return task, compressor, reader
