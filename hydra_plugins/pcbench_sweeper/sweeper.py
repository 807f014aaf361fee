# ruff: noqa: UP006, UP007, UP035, UP045  (Optional/Dict/List on purpose; see the comment on imports)
"""BasicSweeper, plus a check of every cell before any runs.

Hydra's BasicSweeper composes the jobs of one batch just before launching it: a bad value in the
third cell (`compressor.rate=0.5,abc`) surfaces only after the first cells ran, and composition
alone does not check types. This sweeper composes every job of every batch first and builds its
task, compressor and reader (knobs converted and checked, nothing loaded), so a sweep fails in
seconds with the same one line as a single run, naming the cell. The launcher is untouched, so
it works with the local launcher and the submitit ones alike.

Selected in conf/config.yaml (`override hydra/sweeper: pcbench`); registered here in Hydra's
ConfigStore, like Hydra's own plugins.
"""

# No `from __future__ import annotations`: Hydra executes plugin modules before registering them in
# sys.modules, so string annotations could not be resolved by @dataclass, and OmegaConf reads
# the config dataclass's annotations as types (hence Optional/Dict rather than `X | None`).
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger(__name__)
COMPOSING = object()  # not the task function's code: a ValueError while composing is Hydra's (bad input)


@dataclass
class PcbenchSweeperConf:
    _target_: str = "hydra_plugins.pcbench_sweeper.sweeper.PcbenchSweeper"
    # Same knobs as Hydra's basic sweeper: experiments set `hydra.sweeper.params`.
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="pcbench", node=PcbenchSweeperConf, provider="pcbench")


class PcbenchSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self._checked = False

    def sweep(self, arguments: List[str]) -> Any:
        jobs = self.jobs(arguments)
        started = time.perf_counter()
        self.check(jobs)
        log.info("checked %d cells in %.1f s", len(jobs), time.perf_counter() - started)
        self._checked = True
        returns = super().sweep(arguments)
        if not isinstance(self.launcher, BasicLauncher):
            # Remote launchers (submitit) run the cells elsewhere: their headlines and failures come
            # back here as return values (the local launcher runs cells in this process, which print).
            from runners.cli import failed
            from runners.logs import headline

            for batch in returns:
                for result in batch:
                    value, number = result.return_value, result.hydra_cfg.hydra.job.num
                    if isinstance(value, dict) and "error" in value:
                        failed(value["error"])
                    else:
                        print(f"[#{number}] {headline(value)}", flush=True)
        return returns

    def jobs(self, arguments: List[str]) -> List[List[str]]:
        """The overrides of every job, in launch order (all batches)."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        return [job for batch in self.split_arguments(overrides, None) for job in batch]

    def check(self, jobs: Sequence[Sequence[str]]) -> None:
        """Compose and build every job; the first bad one is a PcbenchError naming the cell."""
        from core.errors import PcbenchError
        from runners.build import build_cell
        from runners.cli import one_line

        assert self.hydra_context is not None and self.config is not None
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

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not self._checked:  # every job was composed already in check()
            super().validate_batch_is_legal(batch)
