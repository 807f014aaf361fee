"""analysis/report.ipynb runs top to bottom on a real report's table and draws the same things."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import needs_smollm2
from support.study_cells import study

from pcbench.analysis.report import main

ROOT = Path(__file__).resolve().parents[2]


@needs_smollm2
def test_notebook_executes_on_the_parquet_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "report"
    assert main([str(study(tmp_path)), "--metric", "evidence_recall", "--out", str(out)]) == 0
    monkeypatch.setenv("PCBENCH_REPORT", str(out))
    notebook = nbformat.read(ROOT / "pcbench" / "analysis" / "report.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)
    assert "7 cells; metric evidence_recall" in text
    # The same leaderboard the report wrote, and both plots drawn from the table alone.
    assert "| bm25 level=passage" in text and "Δ vs random" in text and "mean rank" in text
    images = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2 and all(image.startswith(b"\x89PNG") for image in images)
    assert (out / "notebook_tradeoff.pdf").exists()


@needs_smollm2
def test_notebook_finds_the_demo_report_without_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after `make demo` (which writes report/demo/), the notebook runs with nothing set."""
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "report" / "demo"
    assert main([str(study(tmp_path)), "--metric", "evidence_recall", "--out", str(out)]) == 0
    monkeypatch.delenv("PCBENCH_REPORT", raising=False)
    notebook = nbformat.read(ROOT / "pcbench" / "analysis" / "report.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert "7 cells; metric evidence_recall" in "\n".join(str(o.get("text", "")) for o in outputs)
