"""What exists: `pcbench list [compressors|tasks|readers|presets]`, one line each, and "did you mean".

Each option's line is the first sentence of its YAML's opening comment, so the description lives
beside the defaults it describes and cannot drift from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


# -- the manual's knob tables, made from the YAML and the class (docs/hooks.py puts them in pages) --------


def yaml_comments(group: str, option: str, conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """Each top-level key's comment (the lines just above it and the one after its value), from
    the option's YAML, then from the options it extends (`defaults: [base]`), nearest first."""
    file = conf_dir / group / f"{option}.yaml"
    found: dict[str, str] = {}
    pending: list[str] = []
    bases: list[str] = []
    in_defaults = False
    for line in file.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text:
            pending = []
            continue
        if text.startswith("#"):
            pending.append(text.lstrip("#").strip())
            continue
        if in_defaults and text.startswith("- "):
            base = text[2:].split("@", 1)[0].strip()
            if base not in ("_self_",) and not base.startswith(("/", "override")):
                bases.append(base)
            continue
        match = TOP_LEVEL_KEY.match(line)
        in_defaults = match is not None and match.group(1) == "defaults"
        if match is not None:
            found.setdefault(match.group(1), " ".join([*pending, _inline_comment(match.group(2))]).strip())
        pending = []
    for base in bases:
        if (conf_dir / group / f"{base}.yaml").is_file():
            for key, comment in yaml_comments(group, base, conf_dir).items():
                if not found.get(key):
                    found[key] = comment
    return found


# What the knobs every scored compressor shares mean (methods/index.md#budgets says more).
SHARED_KNOBS = {
    "rate": "fraction of the context's tokens kept, in (0, 1]; set one of rate, target_tokens, threshold",
    "target_tokens": "tokens kept, instead of a rate",
    "threshold": "keep units scoring at least this, where the method has a score scale",
    "level": "the units scored and kept: passage, sentence or word (or the method's own)",
    "order": "original: kept units in their order in the context; score: best first",
    "device": "where the model runs: auto, cpu, cuda, cuda:N, mps",
    "dtype": "the model's weights: float32, bfloat16, float16 or auto",
    "batch_size": "examples (or units) per forward pass; changes speed, not results",
    "revision": "the model's hub revision (a commit or tag); null: the default branch",
    "trust_remote_code": "run code shipped with the checkpoint (false: refused)",
    "model": "a hub id, a local folder, or a packaged alias (smollm2, minilm)",
}


TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_]\w*):(.*)$")


def _inline_comment(rest: str) -> str:
    """The comment after a value (`rate: 0.5  # why`), not a `#` inside a quoted string."""
    value = rest.strip()
    if value and value[0] in "\"'":
        end = value.find(value[0], 1)
        value = value[end + 1:] if end > 0 else ""
    return value.split("#", 1)[1].strip() if "#" in value else ""


def _shown_value(value: Any, width: int = 48) -> str:
    import json

    if isinstance(value, str) and "\n" not in value:
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= width else text[: width - 3] + "..."
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def knob_table(group: str, option: str) -> str:
    """Markdown for one option: its class and docstring, then every knob with its default and comment."""
    import inspect

    from hydra.utils import get_class

    from pcbench.runners.compose import option_values

    values = option_values(group, option)
    comments = yaml_comments(group, option)
    cls = get_class(str(values["_target_"]))
    doc = inspect.cleandoc(cls.__doc__ or "") if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else ""
    lines = [f"`{group}={option}` builds `{cls.__module__}.{cls.__qualname__}`.", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| knob | default | what |", "|---|---|---|"]
    for key, value in values.items():
        if key.startswith("_"):
            continue
        comment = (comments.get(key) or SHARED_KNOBS.get(key, "")).replace("|", "\\|")
        lines.append(f"| `{group}.{key}` | {_shown_value(value)} | {comment} |")
    return "\n".join(lines)


def compressors_table(pages: dict[str, str]) -> str:
    """Markdown: every compressor, the page that describes it (`pages`: option -> page), its line."""
    lines = ["| option | what | page |", "|---|---|---|"]
    for name in options("compressor"):
        page = pages.get(name)
        link = f"[{Path(page).stem}]({Path(page).name})" if page else "–"
        lines.append(f"| `{name}` | {description('compressor', name, width=400)} | {link} |")
    return "\n".join(lines)
