"""Every study preset composes, and every cell of its sweep builds (options, keys and values valid)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from runners.build import build_cell
from runners.cli import group_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_composes_and_every_cell_builds(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params or {}
        parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
        axes = [[f"{o.key_or_group}={v}" for v in (o.sweep_string_iterator() if o.is_sweep_override()
                                                     else [o.get_value_element_as_str()])] for o in parsed]
        cells = list(itertools.product(*axes))
        assert cells, "an experiment preset should sweep something"
        for cell in cells:
            build_cell(compose("config", overrides=[f"+experiment={experiment}", *cell]))
