"""Hydra's config tree, shipped inside the package (a package, so that pkg://pcbench/conf resolves)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
