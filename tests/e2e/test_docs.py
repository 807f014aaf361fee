"""What the docs show runs as written: every code block of the README and docs/, on the installed
console scripts, from a folder outside the checkout; the site builds strictly; the manual covers
every method.

Blocks run in page order in one folder per page, so a later block sees what an earlier one made:
- ```bash``` runs in bash (-e, -o pipefail); ```python``` runs in this interpreter;
- a block with `title="PATH"` is written to PATH instead (a data file, a YAML, a module), as
  mkdocs-material shows it with that title;
- ```text``` without a title is an illustration (output, a command form with placeholders);
- a block right after `<!-- not run: WHY -->` is skipped, and WHY must say why (a GPU, the hub, a
  cluster); any other block is an error, so nothing a user is shown escapes this test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>[^>]*?)\s*-->\s*$")
LANGUAGES = {"bash", "python", "yaml", "json", "text"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    title: str | None
    body: str
    not_run: str | None  # the reason given, for a block that is not run

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip()
        language = info.split()[0] if info else ""
        title = re.search(r'title="([^"]+)"', info)
        before = [line for line in text[: match.start()].splitlines() if line.strip()]
        marker = NOT_RUN.search(before[-1]) if before else None
        found.append(Block(page, text.count("\n", 0, match.start()) + 1, language,
                           title.group(1) if title else None, match.group("body"),
                           marker.group("why") if marker else None))
    return found


def test_every_block_is_run_written_or_says_why_not() -> None:
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.language not in LANGUAGES:
                problems.append(f"{block.where()}: language {block.language!r}; use one of {sorted(LANGUAGES)}")
            elif block.not_run is not None and len(block.not_run) < 12:
                problems.append(f"{block.where()}: 'not run' needs a reason")
            elif block.language in ("yaml", "json") and block.title is None and block.not_run is None:
                problems.append(f"{block.where()}: a {block.language} block needs title=\"FILE\" (it is then "
                                "written and used) or a not-run reason")
            if block.title is not None and (block.title.startswith("/") or ".." in Path(block.title).parts):
                problems.append(f"{block.where()}: title {block.title!r} must be a path inside the page's folder")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def installed_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment a user has after `make install`: the console scripts on PATH, no checkout on
    the import path, a cache of its own (shared across pages, as a user's is across commands)."""
    script = shutil.which("pcbench")
    if script is None:
        pytest.skip("pcbench is not on PATH: install the checkout first (make install)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "PCBENCH_CACHE")}
    env.update(HF_HUB_OFFLINE="1", PCBENCH_CACHE=str(tmp_path_factory.mktemp("docs-cache")), COLUMNS="120")
    return env


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_the_page_s_blocks_run_as_written(page: Path, tmp_path: Path, installed_env: dict[str, str]) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    for block in blocks(page):
        if block.not_run is not None:
            continue
        if block.title is not None:
            target = tmp_path / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
            continue
        if block.language == "bash":
            command = ["bash", "-e", "-o", "pipefail", "-c", block.body]
        elif block.language == "python":
            command = [sys.executable, "-c", block.body]
        else:
            continue  # an illustration (text)
        result = subprocess.run(command, cwd=tmp_path, env=installed_env, capture_output=True, text=True,
                                timeout=1500)
        assert result.returncode == 0, (f"{block.where()} failed (exit {result.returncode}):\n{block.body}\n"
                                        f"--- stderr\n{result.stderr[-3000:]}\n--- stdout\n{result.stdout[-2000:]}")
        assert "Traceback" not in result.stderr, f"{block.where()}:\n{result.stderr[-3000:]}"


def test_a_block_not_run_names_what_ci_lacks_or_where_it_runs_instead() -> None:
    """Only a GPU, the hub, a cluster or a long-running server excuse a block, or CI running it itself."""
    reasons = ("GPU", "hub", "cluster", "server", "make test", "make demo")
    vague = [f"{b.where()}: {b.not_run}" for page in PAGES for b in blocks(page)
             if b.not_run is not None and not any(r in b.not_run for r in reasons)]
    assert not vague, "\n".join(vague)


def test_the_front_door_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; measurements go to docs/results-log.md"
    assert max(len(line) for line in lines) <= 400


def test_the_manual_covers_every_compressor_and_every_method_has_a_docstring() -> None:
    import yaml
    from hydra.utils import get_class

    from pcbench.runners.catalog import options

    marked = set()
    for page in (ROOT / "docs").rglob("*.md"):
        marked |= set(re.findall(r"<!-- knobs: compressor/([\w/.-]+) -->", page.read_text(encoding="utf-8")))
    assert set(options("compressor")) - marked == set(), "compressors with no knobs table in docs/methods"
    for option in options("compressor"):
        target = yaml.safe_load((ROOT / "pcbench/conf/compressor" / f"{option}.yaml").read_text()).get("_target_")
        if target:
            cls = get_class(target)
            assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), f"{target} has no docstring"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs-material is in the lock: make install")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    page = (tmp_path / "site" / "methods" / "extractive" / "index.html").read_text(encoding="utf-8")
    assert "compressor.k1" in page and "BM25Compressor" in page  # the knob table was generated
