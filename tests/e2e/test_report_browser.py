"""report.html in a real browser (Debian's chromium, driven by playwright): no console errors, tables
sort on a click, every link resolves, readable at phone width, and a copied report still works."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from support.study_cells import study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report made from a small real study, then moved away from the study (as when published)."""
    from pcbench.analysis.report import main

    work = tmp_path_factory.mktemp("report")
    root = study(work)
    assert main([str(root), "--out", str(work / "report"), "--metric", "evidence_recall"]) == 0
    moved = tmp_path_factory.mktemp("published") / "site"
    shutil.copytree(work / "report", moved)
    shutil.rmtree(root)  # nothing may point back at the study
    return moved / "report.html"


@pytest.fixture(scope="module")
def browser() -> Any:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the lock: make install")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_page(browser: Any, url: str, width: int = 1280) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def test_the_report_opens_without_errors_summary_first(browser: Any, published: Path) -> None:
    page, errors = open_page(browser, published.as_uri())
    headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
    assert headings[:3] == ["Summary", "Trade-off", "Cells"], headings
    assert "best is" in page.inner_text("ul.summary")
    assert page.evaluate("document.querySelector('img').naturalWidth") > 0
    assert errors == []


def test_clicking_a_column_head_sorts_by_its_numbers(browser: Any, published: Path) -> None:
    page, errors = open_page(browser, published.as_uri())
    table = "table.sortable"
    heads = page.eval_on_selector_all(f"{table} thead th", "hs => hs.map(h => h.textContent)")
    column = next(i for i, h in enumerate(heads) if h.startswith("evidence_recall"))
    read = (f"Array.from(document.querySelector('{table}').tBodies[0].rows)"
            f".map(r => parseFloat(r.cells[{column}].textContent))")
    page.click(f"{table} thead th:nth-child({column + 1})")
    up = page.evaluate(read)
    page.click(f"{table} thead th:nth-child({column + 1})")
    down = page.evaluate(read)
    assert up == sorted(up) and down == sorted(down, reverse=True) and up != down
    assert errors == []


def test_every_link_resolves_inside_the_copied_report(browser: Any, published: Path) -> None:
    page, _ = open_page(browser, published.as_uri())
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    targets = [Path(unquote(urlparse(h).path)) for h in hrefs if h.startswith("file:")]
    assert targets and all(t.is_file() for t in targets), [str(t) for t in targets if not t.is_file()]
    assert all(t.is_relative_to(published.parent) for t in targets)
    examples = [h for h in hrefs if "/examples/" in h]
    assert examples
    # An inspect page links back to the report and across to the same example in other cells.
    inspect, errors = open_page(browser, examples[0])
    nav = inspect.eval_on_selector_all("nav a", "as => as.map(a => a.href)")
    assert nav[0].endswith("/report.html") and len(nav) > 1
    assert all(Path(unquote(urlparse(h).path)).is_file() for h in nav)
    assert Path(unquote(urlparse(nav[1]).path)).name == Path(unquote(urlparse(examples[0]).path)).name
    assert errors == []


def test_readable_at_phone_width(browser: Any, published: Path) -> None:
    """At 420 px nothing widens the page itself: wide tables scroll inside their own box."""
    page, errors = open_page(browser, published.as_uri(), width=420)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    assert page.evaluate("document.querySelectorAll('.scroll table').length") >= 3
    assert errors == []
