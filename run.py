"""Run one cell: `python run.py task=hotpotqa compressor=bm25 compressor.rate=0.5`.

Sweeps: `python run.py -m compressor=none,bm25 compressor.rate=0.5,0.25` (add
`hydra/launcher=submitit_slurm` to run each cell as a SLURM job). Hydra parses the command line,
so every Hydra flag works (`--cfg job`, `-p compressor`, `--info`, `-cn`, `-cd`, `--help`);
bad input ends as one `error: ...` line with exit code 2 (runners/cli.py).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from core.errors import PcbenchError
from runners.cell import run_cell
from runners.cli import cli, failed
from runners.logs import headline, quiet_third_party
from runners.wandb_log import log_to_wandb

log = logging.getLogger("pcbench")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> dict[str, Any]:
    """One cell; returns its metrics, or {"error": message} when it stopped on bad input."""
    # Libraries imported so far lose their chatty levels; ones imported later (bm25s sets DEBUG at
    # import) are held back by the handlers' filter (runners/logs.py).
    quiet_third_party()
    hydra_cfg = HydraConfig.get()
    runtime = hydra_cfg.runtime
    names = {group: str(runtime.choices.get(group)) for group in ("task", "compressor", "reader")}
    out_dir = Path(runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        metrics = run_cell(cfg, out_dir, names)
    except PcbenchError as exc:
        # Into run.log; the terminal gets it once, as the `error:` line runners/cli.py prints at the end.
        log.error("%s", exc, extra={"console": False})
        where = f"sweep job #{hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)}): " if sweep else ""
        return failed(f"{where}{exc}")
    if cfg.wandb.enabled:
        log_to_wandb(cfg, metrics, out_dir)
    line = headline(metrics)
    if sweep:
        print(f"[#{hydra_cfg.job.num}] {line}  -> {out_dir}", flush=True)
    else:
        print(line)
        print(f"results: {out_dir}")
    return metrics


if __name__ == "__main__":
    sys.exit(cli(main))
