"""The `pcbench` command: one cell (`pcbench task=hotpotqa compressor=bm25 compressor.rate=0.5`).

Sweeps: `pcbench -m compressor=none,bm25 compressor.rate=0.5,0.25` (add `hydra/launcher=slurm` to
run each cell as a SLURM job). Hydra parses the command line, so every Hydra flag works (`--cfg
job` and with it `-p compressor`, `--info`, `-cn`, `-cd`, `--help`); bad input ends as one `error: ...` line
with exit code 2 (runners/cli.py). From a checkout, `python run.py ...` is the same command.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

from pcbench.analysis.wandb_log import log_to_wandb
from pcbench.core.errors import PcbenchError
from pcbench.core.files import shown, write_atomically
from pcbench.core.redact import redact
from pcbench.runners.cache import remove_stale_temporaries
from pcbench.runners.catalog import run_list
from pcbench.runners.cell import run_cell
from pcbench.runners.cli import cli, disk_full, failed, progress, write_error
from pcbench.runners.logs import headline, quiet_third_party

log = logging.getLogger("pcbench")


def register_sweeper() -> None:
    """Make `conf/config.yaml`'s `hydra/sweeper: pcbench` resolve on every install.

    Hydra finds plugins by scanning the hydra_plugins namespace, which an editable install hides, so
    the sweeper is registered by hand. Hydra's one scan (the first `Plugins.instance()`) re-executes
    its own plugin modules in place, which replaces `BasicSweeper` with a new class: a sweeper class
    created before the scan subclasses the old one and fails in `super().__init__()`. So the scan
    runs first, and a sweeper module imported before it (by a test, say) is executed again.
    """
    plugins = Plugins.instance()
    basic = importlib.import_module("hydra._internal.core_plugins.basic_sweeper").BasicSweeper
    module = importlib.import_module("hydra_plugins.pcbench_sweeper.sweeper")
    if not issubclass(module.PcbenchSweeper, basic):
        module = importlib.reload(module)
    plugins.register(module.PcbenchSweeper)


register_sweeper()


# The configs ship inside the package (pcbench/conf), so the installed command finds them too.
@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> Mapping[str, Any]:
    """One cell; returns its metrics, or {"error": message, ...} when it failed (runners.cli.failed).

    A failed cell leaves error.txt in its folder and no finished metrics.json, so a rerun of the
    sweep retries it; in a sweep the next cell runs either way.
    """
    # Libraries imported so far lose their chatty levels; ones imported later (bm25s sets DEBUG at
    # import) are held back by the handlers' filter (runners/logs.py).
    quiet_third_party()
    hydra_cfg = HydraConfig.get()
    runtime = hydra_cfg.runtime
    names = {group: str(runtime.choices.get(group)) for group in ("task", "compressor", "reader")}
    out_dir = Path(runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = " ".join(hydra_cfg.overrides.task) or "no overrides"
    where = f"sweep job #{hydra_cfg.job.num} ({overrides}): " if sweep else ""
    # A killed writer's temporary metrics file (older than an hour, so never a live one's).
    remove_stale_temporaries(out_dir, ".metrics.json.*.tmp")
    redact_files(out_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None)
    try:
        metrics = run_cell(cfg, out_dir, names)
        if cfg.wandb.enabled:
            log_to_wandb(cfg, metrics, out_dir)
    except Exception as exc:
        known = str(exc) if isinstance(exc, PcbenchError) else disk_full(exc)
        if known is None:
            return bug(exc, out_dir, where, sweep)
        # Into run.log; the terminal gets it once, as the `error:` line runners/cli.py prints at the end.
        log.error("%s", known, extra={"console": False})
        write_error(out_dir, known)
        if sweep:
            print(redact(f"[#{hydra_cfg.job.num}{_at(progress())}] failed: {known}  -> {shown(out_dir)}"), flush=True)
        return failed(f"{where}{known}", out_dir)
    line = headline(metrics) + ("  (already finished: skipped)" if metrics.get("skipped") else "")
    if sweep:
        print(f"[#{hydra_cfg.job.num}{_at(progress())}] {line}  -> {shown(out_dir)}", flush=True)
    else:
        print(line)
        print(f"results: {shown(out_dir)}")
    return metrics


def bug(exc: Exception, out_dir: Path, where: str, sweep: bool) -> dict[str, Any]:
    """A bug or an exhausted resource (out of memory): the traceback goes to error.txt and run.log.
    A sweep goes on with the next cell; a single run shows the traceback too."""
    trace = "".join(traceback.format_exception(exc))
    message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    log.error("%s\n%s", message, trace, extra={"console": False})
    write_error(out_dir, message, trace)
    if not sweep:
        raise exc
    print(redact(f"[#{HydraConfig.get().job.num}{_at(progress())}] failed: {message}  -> {shown(out_dir)}"),
          flush=True)
    return failed(f"{where}{message} (traceback in {out_dir / 'error.txt'})", out_dir, bug=True)


def _at(progress_text: str) -> str:
    return f" {progress_text}" if progress_text else ""


def redact_files(folder: Path | None) -> None:
    """Hydra's copies of the config (.hydra/*.yaml) with credentials in URLs masked, as config.yaml."""
    if folder is None or not folder.is_dir():
        return
    for file in folder.glob("*.yaml"):
        text = file.read_text(encoding="utf-8")
        if redact(text) != text:
            write_atomically(file, redact(text))


def entry() -> int:
    """The console script: Hydra reads sys.argv; bad input is one line (runners/cli.py).

    `pcbench list [KIND ...]` and `pcbench --version` are answered before Hydra sees the arguments.
    """
    arguments = sys.argv[1:]
    if arguments[:1] == ["list"]:
        code, text = run_list(arguments[1:])
        print(text, file=sys.stderr if code else sys.stdout)
        return code
    if arguments[:1] in (["--version"], ["-V"]):
        print(f"pcbench {version()}")
        return 0
    return cli(main)


def version() -> str:
    """The installed distribution's version (pyproject.toml), else the package's own."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pcbench")
    except PackageNotFoundError:
        import pcbench

        return pcbench.__version__


if __name__ == "__main__":
    sys.exit(entry())
