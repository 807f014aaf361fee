"""Hydra's config tree, shipped inside the package (a package, so that pkg://pcbench/conf resolves)."""

from pathlib import Path

# config.yaml selects the pcbench sweeper, whose config its plugin module registers when imported.
# Hydra imports it by scanning the hydra_plugins namespace, which misses an editable install's
# import hook; importing it here lets any console script (pcbench-train) compose this tree.
import hydra_plugins.pcbench_sweeper.sweeper  # noqa: F401

CONF_DIR = Path(__file__).resolve().parent
