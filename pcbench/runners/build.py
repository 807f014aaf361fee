"""A cell's components from its composed config: the top-level keys checked, then task, compressor,
reader and any judge built (core/build.py checks every knob first; nothing loads here, so the
sweeper can build every cell of a sweep before the first one runs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pcbench.compressors.base import Compressor
from pcbench.core.build import build
from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Pattern, Range, check_knobs
from pcbench.readers.base import Reader
from pcbench.tasks.base import Task
from pcbench.tasks.judge import JUDGE_METRIC, BergenJudge

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


@dataclass
class CellParts:
    """What a cell is made of. `judge` scores each prediction as llm_judge, reading through its own
    reader (`judge_reader`); both None without `judge=`."""

    task: Task
    compressor: Compressor
    reader: Reader
    judge: BergenJudge | None = None
    judge_reader: Reader | None = None

    def settings(self) -> dict[str, dict[str, Any]]:
        """Each part's own settings (its knobs and version): what a finished cell's results depend on."""
        settings = {"task": self.task.settings(), "compressor": self.compressor.settings(),
                    "reader": self.reader.settings()}
        if self.judge is not None and self.judge_reader is not None:  # no key without a judge: old keys hold
            settings["judge"] = {**self.judge.settings(), "reader": self.judge_reader.settings()}
        return settings


def build_cell(cfg: DictConfig) -> CellParts:
    """Task, compressor, reader and judge of a composed config (checked, built, nothing loaded)."""
    check_run_settings(cfg)
    task, compressor, reader = (build(cfg[group], group) for group in GROUPS)
    parts = CellParts(task, compressor, reader)
    node = cfg.get("judge")
    if node is not None:
        if not reader.generates:
            raise PcbenchError("judge=... scores predictions, and reader=none makes none; choose a reader "
                               "that generates, or leave the judge out (judge=none)")
        values = {str(k): v for k, v in node.items() if k != "reader"}
        parts.judge, parts.judge_reader = build(values, "judge"), build(node.reader, "judge.reader")
    elif JUDGE_METRIC in task.metrics:
        raise PcbenchError(f"task.metrics names {JUDGE_METRIC}, which needs a judge model: add judge=smollm2 "
                           "(or judge=transformers, vllm, openai with judge.reader.model=...)")
    return parts
