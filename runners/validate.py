"""Check command-line overrides before Hydra runs, so a typo costs one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from core.errors import PcbenchError

GROUPS = ("task", "compressor", "reader")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    root = conf_dir / group
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def check_overrides(args: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise PcbenchError naming the first unknown group option or key, with what is allowed."""
    args = [a for a in args if not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise PcbenchError(f"cannot parse overrides {' '.join(args)!r}: {first}") from None

    base = OmegaConf.load(conf_dir / "config.yaml")
    chosen: dict[str, list[str]] = {}
    for item in base.get("defaults", []):
        if isinstance(item, DictConfig):  # entries like {task: niah}; "_self_" is a plain string
            chosen.update({str(group): [str(option)] for group, option in item.items()})

    for o in overrides:
        key = o.key_or_group
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(o.value())]
        if key in GROUPS and not o.is_delete():
            allowed = options(key, conf_dir)
            for value in values:
                if value not in allowed:
                    raise PcbenchError(f"unknown {key} {value!r}; allowed: {', '.join(allowed)}")
            chosen[key] = values

    for o in overrides:
        head, _, rest = o.key_or_group.partition(".")
        if o.is_add() or head.startswith("hydra") or o.key_or_group in GROUPS or "/" in head:
            continue
        if head not in GROUPS:
            if head not in base:
                allowed = [k for k in base if k not in ("defaults", "hydra")] + list(GROUPS)
                raise PcbenchError(f"unknown setting {head!r}; allowed: {', '.join(allowed)} (or +{head}=... to add)")
            continue
        knob = rest.split(".")[0]
        for option in chosen.get(head, []):
            node = _composed(head, option, conf_dir)
            if knob not in node:
                allowed = ", ".join(k for k in node if k != "_target_")
                raise PcbenchError(f"{head} {option!r} has no key {knob!r}; allowed: {allowed}")


def _composed(group: str, option: str, conf_dir: Path) -> DictConfig:
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            return compose("config", overrides=[f"{group}={option}"])[group]
    except HydraException as exc:
        raise PcbenchError(f"cannot compose {group}={option}: {str(exc).strip().splitlines()[0]}") from None
