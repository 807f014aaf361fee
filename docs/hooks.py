"""mkdocs hook: the manual's generated parts, made at build time so they cannot drift.

- `<!-- include: ../FILE -->` shows a root file (the changelog) as a page;
- `<!-- knobs: GROUP/OPTION -->` becomes that option's class, docstring and knob table, from its YAML
  and its class (pcbench/runners/catalog.py);
- `<!-- compressors-table -->` lists every compressor with its page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pcbench.runners.catalog import compressors_table, knob_table

KNOBS = re.compile(r"<!-- knobs: (\w+)/([\w/.-]+) -->")
TABLE = "<!-- compressors-table -->"
INCLUDE = re.compile(r"<!-- include: ([\w./-]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **_: Any) -> str:
    # A file kept at the repository's root (CHANGELOG.md), shown as a page of the manual.
    markdown = INCLUDE.sub(lambda m: (Path(config["docs_dir"]) / m.group(1)).read_text(encoding="utf-8"), markdown)
    markdown = KNOBS.sub(lambda m: knob_table(m.group(1), m.group(2)), markdown)
    if TABLE in markdown:
        here = Path(page.file.src_path).parent
        pages = {}
        for file in Path(config["docs_dir"]).rglob("*.md"):
            for group, option in KNOBS.findall(file.read_text(encoding="utf-8")):
                if group == "compressor":
                    relative = file.relative_to(config["docs_dir"])
                    pages[option] = str(Path(*([".."] * len(here.parts)), relative)) if here.parts else str(relative)
        markdown = markdown.replace(TABLE, compressors_table(pages))
    return markdown
