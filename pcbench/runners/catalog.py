"""What exists: `pcbench list [compressors|tasks|readers|presets]`, one line each, and "did you mean".

Each option's line is the first sentence of its YAML's opening comment, so the description lives
beside the defaults it describes and cannot drift from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pcbench.conf import CONF_DIR
from pcbench.core.errors import closest

# What a user types after `pcbench list`, and the config group each names.
KINDS = {"compressors": "compressor", "tasks": "task", "readers": "reader", "presets": "experiment"}


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """Every option of a config group, nested ones as `sub/name`; `_*.yaml` files are bases, not options."""
    root = conf_dir / group
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")
                  if not p.name.startswith("_"))


def description(group: str, option: str, conf_dir: Path = CONF_DIR, width: int = 110) -> str:
    """The first sentence of the YAML's opening comment (Hydra's `# @package` line skipped)."""
    words: list[str] = []
    for line in (conf_dir / group / f"{option}.yaml").read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            words.extend(text.lstrip("#").split())
        elif words:
            break
    sentence = SENTENCE_END.split(" ".join(words), maxsplit=1)[0]
    if len(sentence) <= width:
        return sentence
    return sentence[: width - 3].rsplit(" ", 1)[0] + "..."


# A period then a space ends a sentence, except in the abbreviations the comments use.
SENTENCE_END = re.compile(r"(?<=\.)(?<!et al\.)(?<!e\.g\.)(?<!i\.e\.)(?<!vs\.)\s")


def listing(kinds: Iterable[str]) -> str:
    """The lines `pcbench list KIND ...` prints: per kind a heading, then `  name  description`."""
    blocks = []
    for kind in kinds:
        group = KINDS[kind]
        names = options(group)
        pad = max(len(name) for name in names) + 2
        rows = [f"  {name:<{pad}}{description(group, name)}" for name in names]
        blocks.append(f"{kind} ({group}=NAME):\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def run_list(arguments: list[str]) -> tuple[int, str]:
    """`pcbench list ...`: (exit code, text to print); an unknown kind is one line naming the kinds."""
    wanted = arguments or list(KINDS)
    for kind in wanted:
        if kind not in KINDS:
            guess = closest(kind, KINDS)
            hint = f"did you mean {guess!r}? " if guess else ""
            return 2, f"error: cannot list {kind!r}; {hint}allowed: {', '.join(KINDS)}"
    return 0, listing(wanted)
