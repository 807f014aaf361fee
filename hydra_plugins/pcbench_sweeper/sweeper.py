# ruff: noqa: UP006, UP007, UP035, UP045  (Optional/Dict/List on purpose; see the comment on imports)
"""BasicSweeper, plus variants, a check of every cell before any runs, and a sweep that survives failed cells.

Hydra's BasicSweeper composes the jobs of one batch just before launching it: a bad value in the
third cell (`compressor.rate=0.5,abc`) surfaces only after the first cells ran, and composition
alone does not check types. This sweeper composes every job of every batch first and builds its
task, compressor and reader (knobs converted and checked, nothing loaded), so a sweep fails in
seconds with the same one line as a single run, naming the cell. The launcher is untouched, so
it works with the local launcher and the submitit ones alike.

Variants (`hydra.sweeper.variants`) pair knobs that go together, which a grid cannot say: each
entry is a list of overrides applied together (`[compressor=provence, compressor.threshold=0.1]`),
and every variant is crossed with the `params` grid and the command line's sweeps. A variant's own
keys win over the grid's for its cells (the grid's value would break the pairing), and cells that
come out identical are run once. `hydra.sweeper.waiting_for` (compressor family -> why it is
missing) is said once as a warning, so a preset for families not built yet runs what exists.

A failed cell does not stop the sweep (run.py writes its error.txt and returns the failure); the
sweep ends with `sweep: N done, N skipped (already finished), N failed: <folders>`, printed last by
runners/cli.py, which also sets the exit code. A job that returned nothing (killed, out of
memory, preempted too often under submitit) is read from its folder instead.

Selected in conf/config.yaml (`override hydra/sweeper: pcbench`); registered here in Hydra's
ConfigStore, like Hydra's own plugins.
"""

# No `from __future__ import annotations`: Hydra executes plugin modules before registering them in
# sys.modules, so string annotations could not be resolved by @dataclass, and OmegaConf reads
# the config dataclass's annotations as types (hence Optional/Dict rather than `X | None`).
import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, cast

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

if TYPE_CHECKING:  # pcbench itself loads only when a job runs (see the module doc)
    from pcbench.core.records import CellMetrics

log = logging.getLogger(__name__)
COMPOSING = object()  # not the task function's code: a ValueError while composing is Hydra's (bad input)


@dataclass
class PcbenchSweeperConf:
    _target_: str = "hydra_plugins.pcbench_sweeper.sweeper.PcbenchSweeper"
    # Same knobs as Hydra's basic sweeper: experiments set `hydra.sweeper.params`.
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    # Alternatives, each a list of overrides applied together, crossed with params and the command line.
    variants: Optional[List[List[str]]] = None
    # Compressor families a preset names but that are not built yet: family -> why (said once).
    waiting_for: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="pcbench", node=PcbenchSweeperConf, provider="pcbench")


def override_key(override: str) -> str:
    """The key an override string sets (`+a.b=1` and `a.b=2` set the same key)."""
    return override.split("=", 1)[0].lstrip("+~")


def expand(grid: List[Override], variants: Sequence[List[Override]]) -> List[List[str]]:
    """Every job's overrides: the grid's product, crossed with each variant (variant keys win).

    A variant may itself sweep (`compressor.rate=0.3,0.5`): it then stands for one variant per value.
    Jobs that come out identical (a grid key every variant overrides) are kept once, in first order.
    """
    grid_jobs = BasicSweeper.split_arguments(grid, None)[0]
    if not variants:
        return grid_jobs
    jobs: List[List[str]] = []
    seen = set()
    shadowed = set()
    for variant in variants:
        for own in BasicSweeper.split_arguments(variant, None)[0]:
            own_keys = {override_key(o) for o in own}
            for grid_job in grid_jobs:
                kept = [o for o in grid_job if override_key(o) not in own_keys]
                for dropped in set(grid_job) - set(kept):
                    if (tuple(own), dropped) not in shadowed:
                        shadowed.add((tuple(own), dropped))
                        log.info("variant [%s] keeps its own value over %s", ", ".join(own), dropped)
                job = [*own, *kept]
                if tuple(sorted(job)) not in seen:
                    seen.add(tuple(sorted(job)))
                    jobs.append(job)
    return jobs


def waiting_line(waiting_for: Dict[str, str]) -> str:
    reasons = ", ".join(f"{family} ({why})" for family, why in waiting_for.items())
    return f"preset waits for compressors not built yet: {reasons}"


class PcbenchSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 variants: Optional[List[List[str]]] = None, waiting_for: Optional[Dict[str, str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.variants = [[str(o) for o in variant] for variant in variants or []]
        self.waiting_for = {str(k): str(v) for k, v in (waiting_for or {}).items()}
        self.folders: List[Optional[Path]] = []
        self._checked = False

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        from pcbench.runners.cli import SUMMARY

        if self.waiting_for:
            log.warning(waiting_line(self.waiting_for))
        jobs = self.jobs(arguments)
        started = time.perf_counter()
        self.check(jobs)
        log.info("checked %d cells in %.1f s", len(jobs), time.perf_counter() - started)
        self._checked = True

        from pcbench.runners.cli import PROGRESS

        # Cells run in this process (the local launcher) print "k/N, ETA" from this.
        PROGRESS.update(total=len(jobs), started=time.monotonic(), finished=0)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # As BasicSweeper does, with credentials masked (core/redact.py), the escaped forms too.
        from pcbench.core.redact import redact

        (sweep_dir / "multirun.yaml").write_text(redact(OmegaConf.to_yaml(self.config)), encoding="utf-8")
        size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else len(jobs)
        remote = not isinstance(self.launcher, BasicLauncher)
        outcomes: List[Tuple[str, Optional[Path]]] = []
        returns: List[Sequence[JobReturn]] = []
        for first in range(0, len(jobs), size):
            batch = jobs[first:first + size]
            launched = time.time()
            try:
                results = self.launcher.launch(batch, initial_job_idx=first)
            except Exception as exc:
                # Under submitit a job that died without a result (killed, out of memory, preempted
                # past max_num_timeout) makes the launcher raise for the whole batch: read each
                # cell's state from its folder instead of losing the others.
                reason = " ".join(str(exc).split())[:300]
                log.error("the launcher returned no results for jobs #%d-#%d (%s: %s); reading their folders",
                          first, first + len(batch) - 1, type(exc).__name__, reason)
                outcomes += [self.from_folder(first + i, batch[i], launched) for i in range(len(batch))]
                continue
            returns.append(results)
            outcomes += [self.outcome(first + i, result, remote) for i, result in enumerate(results)]
        failed_folders = [self.shown(folder) for kind, folder in outcomes if kind == "failed"]
        counts = {kind: sum(k == kind for k, _ in outcomes) for kind in ("done", "skipped", "failed")}
        line = (f"sweep: {counts['done']} done, {counts['skipped']} skipped (already finished), "
                f"{counts['failed']} failed")
        SUMMARY.append(line + (f": {', '.join(failed_folders)}" if failed_folders else ""))
        return returns

    @staticmethod
    def shown(folder: Optional[Path]) -> str:
        from pcbench.core.files import shown

        return shown(folder)

    def outcome(self, number: int, result: JobReturn, remote: bool) -> Tuple[str, Optional[Path]]:
        """("done" | "skipped" | "failed", folder) of a job that came back.

        The local launcher ran the cell in this process, which already printed its line and
        registered any failure; a remote one's line and failure are given here.
        """
        from pcbench.runners.cli import failed, write_error
        from pcbench.runners.logs import headline

        folder = self.folders[number] if number < len(self.folders) else None
        if result.hydra_cfg is not None:
            folder = Path(str(result.hydra_cfg.hydra.runtime.output_dir))
        if result.status != JobStatus.COMPLETED:
            # The task function catches everything; this is an error in Hydra's job set-up or callbacks.
            exc = result._return_value
            message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if folder is not None:
                trace = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else None
                write_error(folder, message, trace)
            failed(f"sweep job #{number}: {message}", folder, bug=True)
            print(f"[#{number}] failed: {message}  -> {folder}", flush=True)
            return "failed", folder
        value = result._return_value
        if isinstance(value, dict) and "error" in value:
            if remote:
                failed(str(value["error"]), folder, bug=bool(value.get("bug")))
                print(f"[#{number}] failed: {value['error']}  -> {folder}", flush=True)
            return "failed", folder
        skipped = isinstance(value, dict) and bool(value.get("skipped"))
        if remote and isinstance(value, dict):
            line = headline(cast("CellMetrics", value))
            print(f"[#{number}] {line}{'  (already finished: skipped)' if skipped else ''}  -> {folder}",
                  flush=True)
        return ("skipped" if skipped else "done"), folder

    def from_folder(self, number: int, overrides: Sequence[str], launched: float) -> Tuple[str, Optional[Path]]:
        """A job's outcome read from its cell folder (when the launcher gave no results back)."""
        from pcbench.runners.cli import failed, write_error

        folder = self.folders[number] if number < len(self.folders) else None
        where = f"sweep job #{number} ({' '.join(overrides) or 'no overrides'})"
        if folder is None:
            failed(f"{where}: no result came back and its folder is unknown", None, bug=True)
            return "failed", None
        try:
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            if isinstance(metrics, dict) and metrics.get("status") == "finished":
                before = (folder / "metrics.json").stat().st_mtime < launched
                return ("skipped" if before else "done"), folder
        except (OSError, ValueError):
            pass
        error = folder / "error.txt"
        if error.is_file():
            message = (error.read_text(encoding="utf-8").splitlines() or ["failed"])[0]
        else:
            message = ("no result came back: the job ended without finishing (killed, out of memory, or "
                       "preempted more than max_num_timeout times); see run.log here and submitit's logs")
            write_error(folder, message)
        failed(f"{where}: {message}", folder, bug=True)
        print(f"[#{number}] failed: {message}  -> {folder}", flush=True)
        return "failed", folder

    def jobs(self, arguments: List[str]) -> List[List[str]]:
        """The overrides of every job, in launch order: the grid crossed with the variants."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        grid = parser.parse_overrides([*self._parse_config(), *arguments])
        variants = [parser.parse_overrides(variant) for variant in self.variants]
        return expand(grid, variants)

    def check(self, jobs: Sequence[Sequence[str]]) -> None:
        """Compose and build every job; the first bad one is a PcbenchError naming the cell.

        Also works out each job's cell folder, to read its state should the launcher lose it.
        """
        from pcbench.core.errors import PcbenchError
        from pcbench.runners.build import build_cell
        from pcbench.runners.cli import one_line

        assert self.hydra_context is not None and self.config is not None
        self.folders = []
        for number, overrides in enumerate(jobs):
            where = f"sweep job #{number} of {len(jobs)} ({' '.join(overrides) or 'no overrides'})"
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            except Exception as exc:
                # Composition only runs Hydra's code: any error here is bad input, shown as one line.
                raise PcbenchError(f"{where}: {one_line(exc, COMPOSING) or exc}") from None
            try:
                build_cell(cfg)
            except PcbenchError as exc:  # anything else is a bug in a constructor: keep its traceback
                raise PcbenchError(f"{where}: {exc}") from None
            folder = cell_folder(cfg, number)
            if folder is not None and folder in self.folders:
                other = self.folders.index(folder)
                raise PcbenchError(
                    f"sweep jobs #{other} ({' '.join(jobs[other]) or 'no overrides'}) and #{number} "
                    f"({' '.join(overrides) or 'no overrides'}) would write one folder, {folder}: they differ only "
                    "in keys left out of folder names (hydra.job.config.override_dirname.exclude_keys)")
            self.folders.append(folder)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not self._checked:  # every job was composed already in check()
            super().validate_batch_is_legal(batch)


def cell_folder(cfg: DictConfig, number: int) -> Optional[Path]:
    """Where the launcher will put this job (hydra.sweep.dir/subdir), as Hydra's run_job works it out.

    The subdir interpolates `${hydra:...}`, which reads the global HydraConfig: it is pointed at
    this job's config for the lookup and restored after. None when it cannot be resolved here.
    """
    holder = HydraConfig.instance()
    saved = holder.cfg
    try:
        with read_write(cfg.hydra.job), open_dict(cfg.hydra.job):
            cfg.hydra.job.num = number
        holder.set_config(cfg)
        return Path(os.path.abspath(Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))))
    except Exception:  # a custom subdir that needs the job's runtime (job.id): unknown until it runs
        return None
    finally:
        holder.cfg = saved
