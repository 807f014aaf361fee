"""Run one cell: `python run.py task=hotpotqa compressor=bm25 compressor.rate=0.5`.

Sweeps: `python run.py -m compressor=none,bm25 compressor.rate=0.5,0.25` (add
`hydra/launcher=submitit_slurm` to run each cell as a SLURM job).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from core.errors import PcbenchError
from runners.cell import run_cell
from runners.validate import check_overrides
from runners.wandb_log import log_to_wandb

log = logging.getLogger("pcbench")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    runtime = HydraConfig.get().runtime
    names = {group: str(runtime.choices.get(group)) for group in ("task", "compressor", "reader")}
    out_dir = Path(runtime.output_dir)
    try:
        metrics = run_cell(cfg, out_dir, names)
    except PcbenchError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if cfg.wandb.enabled:
        log_to_wandb(cfg, metrics, out_dir)
    shown = {k: metrics[k] for k in ("metrics", "kept_ratio", "answer_in_context", "evidence_recall", "n_examples")}
    print(f"{names['task']} x {names['compressor']} x {names['reader']}: {json.dumps(shown)}")
    print(f"results: {out_dir}")


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except PcbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()
