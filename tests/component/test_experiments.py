"""Every study preset composes, and every cell of its sweep builds (options, keys and values valid).

A preset's cells are its `hydra.sweeper.params` grid crossed with its `hydra.sweeper.variants`,
expanded by the sweeper's own code (hydra_plugins/pcbench_sweeper), so what is checked here is
exactly what `python run.py -m +experiment=NAME` would launch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hydra_plugins.pcbench_sweeper.sweeper import expand
from pcbench.runners.build import build_cell
from pcbench.runners.catalog import options as group_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_composes_and_every_cell_builds(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
        sweeper = cfg.hydra.sweeper
        params = sweeper.params or {}
        variants = OmegaConf.to_container(sweeper.variants) if sweeper.get("variants") else []
        waiting = OmegaConf.to_container(sweeper.waiting_for) if sweeper.get("waiting_for") else {}
        assert isinstance(variants, list) and isinstance(waiting, dict)
        assert all(isinstance(v, list) and v and all(isinstance(o, str) for o in v) for v in variants), (
            "each variant is a non-empty list of override strings")
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in waiting.items()), (
            "waiting_for maps a compressor family to why it is missing")
        parser = OverridesParser.create()
        grid = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
        cells = expand(grid, [parser.parse_overrides(v) for v in variants])
        assert cells and cells != [[]], "an experiment preset should sweep something"
        assert len({tuple(sorted(c)) for c in cells}) == len(cells), "no cell twice"
        for cell in cells:
            build_cell(compose("config", overrides=[f"+experiment={experiment}", *cell]))
