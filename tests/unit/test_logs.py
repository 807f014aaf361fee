"""The terminal: logs go through tqdm, libraries stay quiet, run.log is plain, one headline per cell."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tqdm import tqdm

from pcbench.runners.logs import PlainFormatter, ThirdPartyFilter, TqdmHandler, headline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def job_logging(tmp_path: Path) -> Iterator[tuple[io.StringIO, Path]]:
    """conf/hydra/job_logging/pcbench.yaml applied as Hydra applies it, console into a buffer."""
    cfg = OmegaConf.load(ROOT / "pcbench" / "conf" / "hydra" / "job_logging" / "pcbench.yaml")
    cfg.handlers.file.filename = str(tmp_path / "run.log")
    config = OmegaConf.to_container(cfg, resolve=True)
    console = io.StringIO()
    config["handlers"]["console"]["stream"] = console  # type: ignore[index]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logging.config.dictConfig(config)  # type: ignore[arg-type]
    yield console, tmp_path / "run.log"
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = saved


def test_library_chatter_is_dropped_and_own_lines_kept(job_logging: tuple[io.StringIO, Path]) -> None:
    console, run_log = job_logging
    import bm25s  # noqa: F401 - sets its logger to DEBUG at import, which no config can prevent

    logging.getLogger("bm25s").debug("bm25s debug line")
    logging.getLogger("transformers.modeling_utils").info("transformers info line")
    logging.getLogger("urllib3.connectionpool").info("urllib3 info line")
    logging.getLogger("bm25s").warning("bm25s warning line")
    logging.getLogger("pcbench.runners.cell").info("our own info line")
    for text in (console.getvalue(), run_log.read_text()):
        assert "debug line" not in text and "transformers info" not in text and "urllib3 info" not in text
        assert "bm25s warning line" in text and "our own info line" in text


def test_console_lines_go_through_tqdm_write(job_logging: tuple[io.StringIO, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    console, _ = job_logging
    written: list[str] = []
    real = tqdm.write
    monkeypatch.setattr(tqdm, "write", lambda s, file=None, **kw: (written.append(s), real(s, file=file, **kw)))
    logging.getLogger("pcbench.runners.stages").info("between two bar updates")
    assert written and written[0].endswith("between two bar updates")
    assert console.getvalue().endswith("between two bar updates\n")


def test_a_record_marked_not_for_the_console_reaches_run_log_only(job_logging: tuple[io.StringIO, Path]) -> None:
    console, run_log = job_logging
    logging.getLogger("pcbench").error("bad input", extra={"console": False})
    assert "bad input" not in console.getvalue() and "bad input" in run_log.read_text()


def test_run_log_drops_carriage_returns_and_colours() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "10%|#  |\r50%|### |\r\x1b[32mdone\x1b[0m\nnext", None, None)
    assert PlainFormatter("%(message)s").format(record) == "done\nnext"


def test_filter_threshold_is_configurable() -> None:
    info = logging.LogRecord("datasets.builder", logging.INFO, "f", 1, "m", None, None)
    assert not ThirdPartyFilter("WARNING").filter(info) and ThirdPartyFilter("INFO").filter(info)
    ours = logging.LogRecord("pcbench.compressors.bm25", logging.DEBUG, "f", 1, "m", None, None)
    assert ThirdPartyFilter().filter(ours)


def test_tqdm_handler_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    handler = TqdmHandler(stream)
    stream.close()
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    handler.emit(logging.LogRecord("x", logging.INFO, "f", 1, "m", None, None))  # no exception


def test_headline_has_the_numbers_worth_reading_first() -> None:
    metrics = {"task": "hotpotqa", "compressor": "bm25", "reader": "smollm2", "metrics": {"em": 31.5, "f1": 40.25},
               "kept_ratio": 0.2512, "answer_in_context": 61.0, "evidence_recall": None, "n_examples": 200,
               "seconds": {"wall": 12.34}}
    assert headline(metrics) == "hotpotqa x bm25 x smollm2: em=31.5 f1=40.25 kept=0.251 answer_in_context=61 " \
                                "n=200 12.3s"
