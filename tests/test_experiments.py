"""Every study preset composes, and its sweep names only options and keys that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from runners.validate import check_overrides, options

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_composes_and_its_sweep_is_valid(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    check_overrides([f"{key}={value}" for key, value in params.items()])
