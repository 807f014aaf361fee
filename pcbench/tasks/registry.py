"""Every answer metric by the name a task's YAML lists it under: the one place they are registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pcbench.core.errors import PcbenchError
from pcbench.tasks.longbench_metrics import LONGBENCH_METRICS, longbench
from pcbench.tasks.metrics import Metric, exact_match, f1, match, rouge_l, ruler_match

METRICS: dict[str, Metric] = {
    "em": exact_match,
    "f1": f1,
    "match": match,
    "rouge_l": rouge_l,
    "ruler_match": ruler_match,  # RULER's string_match_all
    **LONGBENCH_METRICS,
    "longbench": longbench,  # the official metric of each example's own LongBench dataset
}


# The names a task's `metrics` list may hold, as a type: the knob check lists them on a typo.
if TYPE_CHECKING:
    MetricName = str
else:
    MetricName = Literal[tuple(METRICS)]


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise PcbenchError(f"unknown metric {name!r}; allowed: {', '.join(sorted(METRICS))}")
    return METRICS[name]
