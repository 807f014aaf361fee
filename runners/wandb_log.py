"""Optional W&B logging, fed from the same metrics.json: never the only copy of a result."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}/{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
        out[prefix] = value
    return out


def log_to_wandb(cfg: DictConfig, metrics: dict[str, Any], out_dir: Path) -> None:
    try:
        import wandb

        run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, dir=str(out_dir),
                         name=f"{metrics['task']}/{metrics['compressor']}/{metrics['reader']}",
                         config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous")
        run.summary.update(_flat("", metrics, {}))
        run.finish()
    except Exception as exc:  # a logging outage must not cost the finished cell
        log.warning("W&B logging failed (%s); results are in %s", exc, out_dir)
