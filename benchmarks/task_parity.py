"""Do pcbench's scorers agree with the official ones, case for case? Generated answers, scored twice.

The official functions are read from a checkout of their repository (no network here, and their
modules import clients and models at the top): each named function's source is taken out of its
file and run on its own, beside ours, on the same generated cases.

    python benchmarks/task_parity.py --longbench-v2 PATH/TO/THUDM/LongBench --babilong PATH/TO/booydar/babilong
        --infinitebench PATH/TO/OpenBMB/InfiniteBench --llmlingua PATH/TO/microsoft/LLMLingua [--cases 5000]

Prints, per scorer, how many cases agree; exits 1 on any disagreement, naming the first.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def official(file: Path, name: str, scope: dict[str, Any] | None = None) -> Callable[..., Any]:
    """The function `name` of `file`, defined on its own (its module's imports are not run)."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        sys.exit(f"{file} has no function {name}")
    namespace: dict[str, Any] = {"re": re, **(scope or {})}
    exec(compile(ast.Module([node], []), str(file), "exec"), namespace)  # noqa: S102 - the reference's own code
    return namespace[name]  # type: ignore[no-any-return]


def replies(rng: random.Random, n: int) -> Iterator[str]:
    """Replies a model might write to a four-choice question: the asked format and its near misses."""
    letters = ["A", "B", "C", "D", "E", "a", "(A)", "1"]
    forms = ["The correct answer is ({x})", "The correct answer is {x}", "The correct answer is **({x})**",
             "**The correct answer is ({x})**", "the correct answer is ({x})", "The correct answer is: ({x})",
             "The correct answer is  ({x})", "The correct answer is ({x}).", "Answer: ({x})", "({x})",
             "The correct answer is (insert answer here)", "The correct answer is *{x}*", "{x}"]
    fillers = ["", "Let me think. ", "Step 1: read.\n", "I am not sure. ", "The text says so.\n"]
    for _ in range(n):
        parts = [rng.choice(fillers)]
        for _ in range(rng.choice([1, 1, 2])):
            parts.append(rng.choice(forms).format(x=rng.choice(letters)))
            parts.append(rng.choice(fillers))
        yield "".join(parts)


def longbench_v2(repo: Path, n: int) -> tuple[int, int, str | None]:
    from pcbench.tasks.longbench_v2_metrics import extract_choice

    theirs = official(repo / "pred.py", "extract_answer")
    first = None
    agree = 0
    cases = list(replies(random.Random(0), n))
    for reply in cases:
        if theirs(reply) == extract_choice(reply):
            agree += 1
        elif first is None:
            first = f"{reply!r}: official {theirs(reply)!r}, ours {extract_choice(reply)!r}"
    return agree, len(cases), first


def babilong_cases(rng: random.Random, n: int) -> Iterator[tuple[str, str, str, str]]:
    """(task, target, output, question): replies naming the gold label, another, several, or echoing
    the prompt, in the sentence forms the prompts ask for and their near misses."""
    from pcbench.tasks.babilong_metrics import TASK_LABELS

    forms = ["The most recent location of Mary is {x}.", "{x}", "The {x} is in the {y}.", "{X}. Then {y}.",
             "Before the {y} the apple was in the {x}.", "{x}, {y}", "It is {x} Question: where is {y}?",
             "<example> {y} </example> {x}", "answer: {x}", "The answer is not known", "{x}.{y}"]
    for _ in range(n):
        task = rng.choice(sorted(TASK_LABELS))
        labels = list(TASK_LABELS[task])
        target = rng.choice(labels) if task != "qa8" or rng.random() < 0.5 else ",".join(rng.sample(labels, 2))
        x, y = rng.choice([target, *labels]), rng.choice(labels)
        output = rng.choice(forms).format(x=x, y=y, X=x.capitalize())
        question = rng.choice(["Where is Mary?", f"Where was the football before the {rng.choice(labels)}?",
                               f"What is {rng.choice(labels)} afraid of?", "Is John in the garden?"])
        yield task, target, output, question


def babilong(repo: Path, n: int) -> tuple[int, int, str | None]:
    from pcbench.tasks.babilong_metrics import TASK_LABELS, is_right

    theirs = official(repo / "babilong" / "metrics.py", "compare_answers",
                      {"preprocess_output": official(repo / "babilong" / "metrics.py", "preprocess_output")})
    first, agree = None, 0
    cases = list(babilong_cases(random.Random(0), n))
    for task, target, output, question in cases:
        mine = is_right(target, output, question, TASK_LABELS[task])
        official_says = theirs(target, output, question, list(TASK_LABELS[task]))
        if mine == official_says:
            agree += 1
        elif first is None:
            first = f"{task} {target!r} {output!r} {question!r}: official {official_says}, ours {mine}"
    return agree, len(cases), first


def infinitebench_cases(rng: random.Random, n: int) -> Iterator[tuple[str, str, Any]]:
    """(subtask, reply, label) with labels of the shapes the official files hold."""
    words = ["The", "answer", "is", "answer is:", "answer:", "Option", "option is", "correct option is:", "is:",
             "A", "B", "C", "D", "A.", "B:", "AB", "71432", "3000077442", "3.5", "88", "-4", "`func_1(2)`", "4",
             "Nicky", "ACE", "ace", "repack_carchive", "Walking Georgie", "c14cb8ba-002b", "{", "}", "\n", "'", '"',
             "*", "-", "fighting in world war 1", "The pass key is", ".", ",", "?", "北京", "天安门。", "我爱"]
    labels: dict[str, Callable[[], Any]] = {
        "passkey": lambda: rng.choice(["71432", ["71432"]]), "number_string": lambda: ["3000077442"],
        "kv_retrieval": lambda: rng.choice(["c14cb8ba-002b", ["c14cb8ba-002b"]]),
        "longbook_choice_eng": lambda: [rng.choice(["Walking Georgie", "Nicky"]), rng.choice("ABCD")],
        "code_debug": lambda: ["repack_carchive", rng.choice("ABCD")], "longbook_qa_eng": lambda: [
            "fighting in world war 1", "the war"], "longbook_qa_chn": lambda: ["我爱北京天安门"],
        "longdialogue_qa_eng": lambda: ["ACE", "ACE ROTHSTEIN"], "math_find": lambda: rng.choice([88, 3.5, [4]]),
        "code_run": lambda: rng.choice([4, -4, [88]]),
    }
    for _ in range(n):
        subtask = rng.choice(sorted(labels))
        reply = " ".join(rng.choice(words) for _ in range(rng.randint(0, 6)))
        yield subtask, rng.choice([reply, reply.strip(), " " + reply]), labels[subtask]()


def infinitebench(repo: Path, n: int) -> tuple[int, int, str | None]:
    from pcbench.tasks.infinitebench_metrics import SCORERS

    file = repo / "src" / "compute_scores.py"
    helpers: dict[str, Any] = {"string": __import__("string"), "Counter": __import__("collections").Counter}
    for name in ("normalize_answer", "normalize_zh_answer", "f1_score", "qa_f1_score", "qa_f1_score_zh",
                 "first_int_match"):
        helpers[name] = official(file, name, helpers)
    theirs = {"passkey": "get_score_one_passkey", "number_string": "get_score_one_number_string",
              "kv_retrieval": "get_score_one_kv_retrieval", "longbook_choice_eng": "get_score_one_longbook_choice_eng",
              "code_debug": "get_score_one_code_debug", "longbook_qa_eng": "get_score_one_longbook_qa_eng",
              "longbook_qa_chn": "get_score_one_longbook_qa_chn",
              "longdialogue_qa_eng": "get_score_one_longdialogue_qa_eng", "math_find": "get_score_one_math_find",
              "code_run": "get_score_one_code_run"}
    official_scorers = {task: official(file, name, helpers) for task, name in theirs.items()}
    first, agree, total = None, 0, 0
    for subtask, reply, label in infinitebench_cases(random.Random(0), n):
        if subtask == "kv_retrieval" and isinstance(label, list):
            label_for_theirs: Any = label[0]  # their stored labels are strings (see infinitebench_metrics.py)
        else:
            label_for_theirs = label
        try:
            official_says: Any = float(official_scorers[subtask](reply, label_for_theirs, "model"))
        except ValueError:  # math_find's int() on a decimal match: a crash there, wrong here
            official_says = 0.0
        mine = float(SCORERS[subtask](reply, label))
        total += 1
        if abs(mine - official_says) < 1e-9:
            agree += 1
        elif first is None:
            first = f"{subtask} {reply!r} {label!r}: official {official_says}, ours {mine}"
    return agree, total, first


def meetingbank(repo: Path, n: int) -> tuple[int, int, str | None]:
    """LLMLingua-2's MeetingBank QA score (evaluate_with_gt: the first line, then qa_score) against
    task=meetingbank's postprocess and `match`."""
    import regex

    from pcbench.core.example import Example, Passage
    from pcbench.tasks.metrics import match

    file = repo / "experiments" / "llmlingua2" / "evaluation" / "metrics.py"
    scope: dict[str, Any] = {"regex": regex, "string": __import__("string")}
    scope["normalize_answer2"] = official(file, "normalize_answer2", scope)
    qa_score = official(file, "qa_score", scope)
    rng = random.Random(0)
    pieces = ["The", "council", "approved", "the budget", "$5 million", "on May 3rd", ".", ",", "\n", "an",
              "a", "Budget!", "5 million", "May 3", "no", "yes", "  ", "\n\n"]
    # No gold that normalises to nothing ("a"): qa_score counts every reply right there, `match` none (docs).
    golds = ["the budget", "$5 million", "May 3rd", "approved", "Yes"]
    first, agree = None, 0
    for _ in range(n):
        reply = "".join(rng.choice([" ", ""]) + rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        gold = rng.choice(golds)
        theirs = qa_score(reply.lstrip("\n").split("\n")[0].strip(), [gold])
        example = Example("m", "q", (Passage("t"),), (gold,))
        mine = match(reply.lstrip("\n").split("\n")[0], example)  # the task's first_line postprocess
        if theirs == mine:
            agree += 1
        elif first is None:
            first = f"{reply!r} {gold!r}: official {theirs}, ours {mine}"
    return agree, n, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--longbench-v2", type=Path, help="a checkout of THUDM/LongBench (pred.py at its root)")
    parser.add_argument("--babilong", type=Path, help="a checkout of booydar/babilong (babilong/metrics.py)")
    parser.add_argument("--infinitebench", type=Path, help="a checkout of OpenBMB/InfiniteBench")
    parser.add_argument("--llmlingua", type=Path, help="a checkout of microsoft/LLMLingua (MeetingBank's scorer)")
    parser.add_argument("--cases", type=int, default=5000)
    args = parser.parse_args()
    checks = {"LongBench v2 extract_answer": (longbench_v2, args.longbench_v2),
              "BABILong compare_answers": (babilong, args.babilong),
              "InfiniteBench get_score_one (all but the summary's ROUGE)": (infinitebench, args.infinitebench),
              "MeetingBank QA qa_score": (meetingbank, args.llmlingua)}
    failed = False
    for label, (check, repo) in checks.items():
        if repo is None:
            print(f"{label}: skipped (no checkout given)")
            continue
        agree, total, first = check(repo, args.cases)
        print(f"{label}: {agree}/{total} cases agree" + (f"; first difference {first}" if first else ""))
        failed |= agree != total
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
