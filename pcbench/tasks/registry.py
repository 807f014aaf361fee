"""Every answer metric by the name a task's YAML lists it under: the one place they are registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pcbench.core.errors import PcbenchError
from pcbench.tasks.babilong_metrics import babilong
from pcbench.tasks.infinitebench_metrics import infinitebench
from pcbench.tasks.judge import JUDGE_METRIC
from pcbench.tasks.longbench_metrics import LONGBENCH_METRICS, longbench
from pcbench.tasks.longbench_v2_metrics import choice_accuracy
from pcbench.tasks.metrics import Metric, exact_match, f1, match, rouge_1, rouge_2, rouge_l, rouge_lsum, ruler_match

METRICS: dict[str, Metric] = {
    "em": exact_match,
    "f1": f1,
    "match": match,
    "rouge_l": rouge_l,
    "rouge_1": rouge_1,
    "rouge_2": rouge_2,
    "rouge_lsum": rouge_lsum,
    "ruler_match": ruler_match,  # RULER's string_match_all
    **LONGBENCH_METRICS,
    "longbench": longbench,  # the official metric of each example's own LongBench dataset
    "longbench_v2": choice_accuracy,  # LongBench v2's letter extraction and judge (pred.py)
    "babilong": babilong,  # BABILong's compare_answers (babilong/metrics.py)
    "infinitebench": infinitebench,  # InfiniteBench's get_score_one of each example's subtask
}


# The names a task's `metrics` list may hold, as a type: the knob check lists them on a typo.
# llm_judge is scored by the cell's judge model (tasks/judge.py), not by a function of the answer.
if TYPE_CHECKING:
    MetricName = str
else:
    MetricName = Literal[(*METRICS, JUDGE_METRIC)]


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise PcbenchError(f"unknown metric {name!r}; allowed: {', '.join(sorted(METRICS))}")
    return METRICS[name]
