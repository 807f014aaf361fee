"""What a cell is: its full settings, the knobs that make it a variant, a config hash, the code.

Analysis groups cells by (variant, reader) and treats reruns of one config hash as one cell, so
the identity holds everything that can change a number and nothing that cannot (paths of the
cache and of the output, W&B settings, the study name, rerun flags).
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pcbench.core.knobs import without_later_knobs
from pcbench.core.redact import redact
from pcbench.runners.cache import digest

PACKAGE = Path(__file__).resolve().parents[1]
# Top-level settings that never change a result.
NOT_IDENTITY = ("cache_dir", "wandb", "study", "rerun", "hydra")


def cell_dir(overrides: str) -> str:
    """A cell's folder name from its overrides: readable, file-system safe, bounded in length.

    A path value (`task.path=../data/dev.jsonl`) stands as its file name and a short hash of the
    whole path, so two files of one name in different folders still get two folders."""
    items = re.split(r",(?=[+~]*[A-Za-z_][\w.@/-]*=)", overrides) if overrides else []
    overrides = ",".join(_short_path(item) for item in items)
    name = re.sub(r"[^A-Za-z0-9=.,_+-]", "_", overrides) or "default"
    if len(name) > 120:  # long sweeps: keep a readable head and tell cells apart by a hash
        name = f"{name[:100]}-{hashlib.sha256(overrides.encode()).hexdigest()[:12]}"
    return name


def _short_path(item: str) -> str:
    """A path or URL value as its last part and a short hash of the whole; a credential in it (a URL's
    user-info, an `api_key=` query) never reaches the folder's name, though the hash still tells two
    endpoints apart."""
    key, sep, value = item.partition("=")
    if not sep or ("/" not in value and redact(value) == value):
        return item
    return f"{key}={Path(redact(value)).name or 'path'}-{hashlib.sha256(value.encode()).hexdigest()[:6]}"


# Hydra resolves the run and sweep folders (conf/config.yaml) with this; registered on import,
# which run.py does (through runners.cell) before Hydra starts.
if not OmegaConf.has_resolver("cell_dir"):
    OmegaConf.register_new_resolver("cell_dir", cell_dir)


def config_hash(cfg: DictConfig) -> str:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    # No judge is no key, so the hashes of configs from before the judge existed stay the same; so
    # too the task knobs added later, at their neutral null.
    if isinstance(resolved.get("task"), dict):
        resolved["task"] = without_later_knobs(resolved["task"])
    return digest({k: v for k, v in resolved.items() if k not in NOT_IDENTITY and not (k == "judge" and v is None)})


@functools.lru_cache(maxsize=64)
def _defaults(group: str, option: str) -> dict[str, Any]:
    """The knobs of `group=option` as its YAML sets them (composed once per process)."""
    from pcbench.runners.compose import option_values

    return option_values(group, option)


def variant(group: str, option: str, node: DictConfig) -> dict[str, Any]:
    """The knobs of `node` that differ from the option's YAML (dotted keys for nested nodes)."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    values = {str(k): v for k, v in container.items()}
    try:
        defaults = _defaults(group, option)
    except Exception:  # an option given as a whole node (not a YAML of the group): all knobs count
        defaults = {}
    return _diff(values, defaults)


def _diff(values: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "_target_" and value == defaults.get(key):
            continue
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            out.update(_diff(value, defaults[key], f"{prefix}{key}."))
        elif key not in defaults or defaults[key] != value:
            out[f"{prefix}{key}"] = value
    return out


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """The commit the code came from and whether it had uncommitted changes (None outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cell_key(cfg: DictConfig, settings: dict[str, dict[str, Any]]) -> str:
    """What decides whether a folder's finished results are this cell's: the config hash and each
    component's own settings with its version (a compressor's `version`, a reader's protocol, a
    task's `version`), so a cell whose code changed its results is recomputed, never skipped."""
    return digest({"config": config_hash(cfg), **settings})


def identity(cfg: DictConfig, names: dict[str, str], settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The identity block of metrics.json. `settings` holds each component's own settings()."""
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return {
        "task": task,
        "compressor": settings["compressor"],
        "reader": settings["reader"],
        "variant": {group: variant(group, names[group], cfg[group]) for group in ("task", "compressor", "reader")},
        "config_hash": config_hash(cfg),
        "cell_key": cell_key(cfg, settings),
        "git": git_state(),
        **({"judge": settings["judge"]} if "judge" in settings else {}),  # with judge=...: what judged
    }
