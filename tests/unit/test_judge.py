"""The LLM judge (tasks/judge.py): BERGEN's prompt and verdicts, p(Yes) from a model's own logits,
the cell's llm_judge score and records, agreement with match, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cell, make, needs_smollm2

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.requests import Request
from pcbench.runners.record import judge_summary
from pcbench.tasks.judge import BergenJudge

EXAMPLE = Example("q1", "Who wrote Hamlet", (Passage("Plays", "Hamlet is a play."),), ("Shakespeare", "W. Shakespeare"))


def judge(use_logits: bool = True) -> BergenJudge:
    return BergenJudge(protocol="bergen", max_new_tokens=10, use_logits=use_logits)


def test_the_prompt_is_bergens_default_qa() -> None:
    # naver/bergen config/evaluator/default_qa.yaml, its f-strings evaluated with rubrik "Yes, No" and
    # `:\ ` replaced by `: `, the answer being BERGEN's label list.
    request = judge().request(EXAMPLE, "William Shakespeare wrote it.")
    assert request.system == "You are an evaluation tool. Answer with one of Yes, No."
    assert request.prompt == (
        "Here is a question, a golden answer and an AI-generated answer. Can you judge whether the AI-generated "
        "answer is correct according to the question and golden answer, simply answer with one of Yes, No.\n "
        "Question: Who wrote Hamlet. \nGolden answer: ['Shakespeare', 'W. Shakespeare'] \n "
        "Generated answer: William Shakespeare wrote it.")
    assert request.max_new_tokens == 10 and request.chat
    assert request.options == ("No", "Yes")  # BERGEN's sorted(options)
    assert judge(use_logits=False).request(EXAMPLE, "x").options is None


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Yes", 1.0), ("No", 0.0), (" Yes, it is correct.", 1.0), ("{No}", 0.0),
    ("Yes and No", None), ("I cannot tell.", None), ("yes", None),  # BERGEN's parser is case-sensitive
    ("None of them", 0.0),  # a substring, as BERGEN's `opt in rep` reads it
])
def test_a_reply_is_read_as_bergens_parser_reads_it(reply: str, verdict: float | None) -> None:
    assert judge().verdict(reply) == verdict


def test_the_logits_give_p_yes_whatever_the_reply() -> None:
    assert judge().verdict("I cannot tell.", {"No": 0.25, "Yes": 0.75}) == pytest.approx(0.75)


def test_requests_without_a_judge_keep_their_cache_keys() -> None:
    # Request.key() leaves out system and options when unset: every generation cached before the
    # judge existed keeps its key.
    assert Request("p", 5).key() == {"prompt": "p", "max_new_tokens": 5, "chat": True, "stop_at_newline": False,
                                     "context_end": None}
    assert {"system", "options"} <= Request("p", 5, system="s", options=("No", "Yes")).key().keys()


def test_agreement_and_kappa_on_a_worked_table() -> None:
    # 50 decided examples: judge right & match right 20, judge right & match wrong 5, judge wrong &
    # match right 10, both wrong 15; observed agreement 0.7, chance 0.5 x 0.6 + 0.5 x 0.4 = 0.5, so
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4. Two undecided replies are counted apart.
    cases = [(1.0, 1.0)] * 20 + [(0.9, 0.0)] * 5 + [(0.1, 1.0)] * 10 + [(0.0, 0.0)] * 15 + [(None, 1.0)] * 2
    records = [{"judge": {"verdict": v, "reply": "", "by": "reply", "match": m, "cached": False}} for v, m in cases]
    summary = judge_summary(records, "bergen", {"model": "m"})  # type: ignore[arg-type]
    assert summary["judged"] == 52 and summary["unknown"] == 2
    assert summary["agreement_with_match"] == pytest.approx(0.7)
    assert summary["kappa"] == pytest.approx(0.4)
    assert summary["table"] == {"judge_right_match_right": 20, "judge_right_match_wrong": 5,
                                "judge_wrong_match_right": 10, "judge_wrong_match_wrong": 15}


@needs_smollm2
def test_option_probabilities_are_the_first_new_tokens_softmax(tiny: str) -> None:
    import torch

    reader = make("reader", "transformers", model=tiny, dtype="float32", device="cpu", batch_size=2)
    requests = [judge().request(EXAMPLE, answer) for answer in ("Shakespeare", "Marlowe, I think")]
    generations = reader.generate(requests)
    lm = reader.lm()
    for request, generation in zip(requests, generations):
        assert generation.option_probs is not None and set(generation.option_probs) == {"No", "Yes"}
        # Independently: one forward pass over the prompt the reader built, its last position's logits.
        ids = torch.tensor([list(reader.prompt(request).ids)])
        with torch.inference_mode():
            last = lm.model(ids).logits[0, -1]
        option_ids = [lm.tokenizer.encode(o, add_special_tokens=False)[0] for o in ("No", "Yes")]
        expected = torch.softmax(last[option_ids].float(), dim=-1).tolist()
        assert [generation.option_probs["No"], generation.option_probs["Yes"]] == pytest.approx(expected, abs=1e-4)
    # The system turn is in the prompt the model read, before the user turn.
    text = reader.prompt(requests[0]).text
    assert text.index("You are an evaluation tool.") < text.index("Here is a question")
    reader.close()


@needs_smollm2
def test_a_cell_with_a_judge_scores_and_records_every_answer(tmp_path: Path, hotpot_file: Path, tiny: str) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=transformers", f"reader.model={tiny}",
            "reader.dtype=float32", "task.max_new_tokens=4", "judge=transformers", f"judge.reader.model={tiny}",
            "judge.reader.dtype=float32"]
    metrics, records = cell(tmp_path, *base)
    assert all(0.0 <= r["scores"]["llm_judge"] <= 1.0 for r in records)
    assert all(r["judge"]["by"] == "logits" and isinstance(r["judge"]["reply"], str) for r in records)
    assert [r["judge"]["verdict"] for r in records] == [r["scores"]["llm_judge"] for r in records]
    assert metrics["judge"]["judged"] == 3 and metrics["judge"]["unknown"] == 0
    assert set(metrics["memory"]) == {"compress", "read", "judge"}
    assert "llm_judge" in metrics["metrics"]
    # Again: the judge's replies come from the cache, as the reader's do; the verdicts are the same.
    _, again = cell(tmp_path, *base, "rerun=true")
    assert all(r["judge"]["cached"] for r in again)
    assert [r["judge"]["verdict"] for r in again] == [r["judge"]["verdict"] for r in records]
    # Parsing the reply instead (BERGEN's vLLM path): each verdict is 1, 0, or undecided.
    metrics, records = cell(tmp_path, *base, "judge.use_logits=false", out="parsed")
    assert all(r["judge"]["by"] == "reply" and r["judge"]["verdict"] in (0.0, 1.0, None) for r in records)
    assert metrics["judge"]["unknown"] == sum(r["judge"]["verdict"] is None for r in records)
    # The report gives each judged cell a row: the judge, llm_judge beside match, agreement.
    from pcbench.analysis.report import build_report

    build_report([str(tmp_path)], "match", tmp_path / "report")
    board = (tmp_path / "report" / "leaderboard.md").read_text().split("## LLM judge", 1)[1]
    assert board.count(tiny) == 2 and "agreement %" in board


def test_naming_llm_judge_without_a_judge_is_one_line(tmp_path: Path, hotpot_file: Path) -> None:
    with pytest.raises(PcbenchError, match=r"task.metrics names llm_judge, which needs a judge model: add judge="):
        cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "task.metrics=[match,llm_judge]")
    with pytest.raises(PcbenchError, match=r"reader=none makes none"):
        cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "judge=smollm2")
