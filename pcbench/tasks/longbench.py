"""LongBench v1 (and LongBench-E) under the official protocol of THUDM/LongBench's pred.py/eval.py.

Everything that differs between LongBench datasets (template, max_new_tokens, chat or raw prompt,
first-line cut, metric) is looked up per example from meta["dataset"], so a single cell can run a
whole suite (task.dataset a list) and still treat every item exactly as the official scripts do.
Only the LongBench `context` is given to the compressor (one Passage); the instruction and `input`
stay whole because the template is rendered after compression.

Not done here, by design: middle truncation to the reader's window and the chat template (the
reader does both, truncation first, as pred.py does).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Annotated, Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.records import ExampleRecord
from pcbench.core.requests import Request, context_end
from pcbench.tasks.base import Counter, Task
from pcbench.tasks.jsonl import (
    drop_unaskable,
    folder_problem,
    hub_origin,
    hub_rows,
    json_lines,
    refuse_duplicate_ids,
    require_keys,
    text_list,
)
from pcbench.tasks.longbench_protocol import (
    ALL,
    CATEGORIES,
    CHINESE,
    DEMONSTRATION_OPENERS,
    FIRST_LINE,
    LENGTH_BUCKETS,
    LONGBENCH_E,
    MAX_NEW_TOKENS,
    METRICS,
    NO_CHAT,
    STOP_AT_NEWLINE,
    TEMPLATES,
    length_bucket,
)

_REQUIRED = ("context", "input", "answers")


@dataclass
class LongBenchTask(Task):
    """LongBench v1 datasets, read from local JSONL files or from the hub.

    dataset: an official key ("hotpotqa", "repobench-p", ...) or a list of them (a suite).
    path: a LongBench JSONL file (single dataset only) or a folder holding <dataset>.jsonl
      (<dataset>_e.jsonl for LongBench-E), as in the official data.zip; null loads from the hub.
    hub_id: a parquet mirror. THUDM/LongBench itself ships a loading script, which datasets>=4
      refuses to run, so the default is Xnhyacinth/LongBench (used by lm-evaluation-harness and
      NVIDIA/kvpress), whose configs are the official names, "<dataset>_e" included.
    longbench_e: read the {dataset}_e configs (13 English datasets) and report length buckets.
    template / max_new_tokens / chat / first_line / stop_at_newline: null (the default) means the
      official per-dataset value; a value set here overrides it for every dataset of the cell.
    metrics: "longbench" is the official metric of each example's own dataset.
    limit: first N examples of each dataset (so a suite smoke-tests every dataset).
    """

    dataset: str | list[str]
    path: str | None
    hub_id: str
    revision: str | None  # the hub dataset's commit or tag (part of the cell's identity)
    split: str
    longbench_e: bool
    # null: the official per-dataset value; the base class's fields take one value for all examples.
    template: str | None  # type: ignore[assignment]
    max_new_tokens: Annotated[int, Range(1)] | None  # type: ignore[assignment]
    chat: bool | None  # type: ignore[assignment]
    first_line: bool | None  # type: ignore[assignment]
    stop_at_newline: bool | None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # Hydra hands lists over as ListConfig; plain lists of str keep the task simple to pickle and log.
        self.dataset = str(self.dataset) if isinstance(self.dataset, str) else [str(d) for d in self.dataset]
        if not self.datasets:
            raise PcbenchError("task.dataset is empty; give a LongBench dataset name or a list of them")
        allowed = LONGBENCH_E if self.longbench_e else ALL
        unknown = [d for d in self.datasets if d not in allowed]
        if unknown:
            kind = "LongBench-E" if self.longbench_e else "LongBench"
            raise PcbenchError(f"unknown {kind} dataset(s) {unknown}; allowed: {', '.join(allowed)}")
        super().__post_init__()

    @property
    def datasets(self) -> tuple[str, ...]:
        return (self.dataset,) if isinstance(self.dataset, str) else tuple(self.dataset)

    def config_name(self, dataset: str) -> str:
        """The official file stem / hub config: "hotpotqa" or, for LongBench-E, "hotpotqa_e"."""
        return f"{dataset}_e" if self.longbench_e else dataset

    # ---- reading -------------------------------------------------------------------------

    def read(self) -> list[Example]:
        examples: list[Example] = []
        origins: list[str] = []
        for dataset in self.datasets:
            name = self.config_name(dataset)
            rows = self._local_rows(name) if self.path is not None else self._hub_rows(name)
            for index, (where, row) in enumerate(rows):
                examples.append(self._example(dataset, name, index, row, where))
                origins.append(where)
        # Ids pair examples across cells (paired tests, the inspector): a file repeating an `_id` is refused.
        refuse_duplicate_ids([e.id for e in examples], origins, str(self.path or self.hub_id))
        return examples

    def load(self, count: Counter | None = None) -> list[Example]:
        # need_question=False: summarisation and code datasets (gov_report, lcc, ...) have an empty `input`.
        examples = drop_unaskable(self.read(), str(self.path or self.hub_id), need_question=False)
        return self.first_of_each(self.within_length(examples, count))

    def limit_group(self, example: Example) -> Any:
        return example.meta["dataset"]  # the first N of each dataset, so a suite smoke-tests every one

    def _file(self, name: str) -> Path:
        base = Path(str(self.path)).expanduser()
        if base.is_dir():
            file = base / f"{name}.jsonl"
            if not any(base.iterdir()):
                raise PcbenchError(folder_problem(base, f"{name}.jsonl (a folder of LongBench .jsonl files)"))
            if not file.is_file():
                raise PcbenchError(
                    f"LongBench file {file} does not exist; task.path must be a folder holding {name}.jsonl "
                    f"(or null to load {self.hub_id} from the hub)"
                )
            return file
        if base.is_file():
            if len(self.datasets) > 1:
                raise PcbenchError(
                    f"task.path={base} is one file but task.dataset lists {len(self.datasets)} datasets; "
                    "pass a folder holding <dataset>.jsonl"
                )
            return base
        raise PcbenchError(f"task.path={base} does not exist (expected a LongBench .jsonl file or a folder of them)")

    def _local_rows(self, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        file = self._file(name)
        with file.open(encoding="utf-8") as handle:
            yield from json_lines(file, handle)

    def _hub_rows(self, name: str) -> Iterable[tuple[str, dict[str, Any]]]:
        data = hub_rows(self.hub_id, name, self.split, self.revision, local=f"task.path=<folder holding {name}.jsonl>")
        return ((hub_origin(f"{self.hub_id}/{name}", i), dict(row)) for i, row in enumerate(data))

    def _example(self, dataset: str, name: str, index: int, row: dict[str, Any], where: str) -> Example:
        require_keys(where, row, _REQUIRED, "LongBench")
        answers = text_list(where, row, "answers")
        # Strings, "" where a dataset has no question (gov_report, lcc): null would be asked as an empty
        # question without a word, so it is refused like any other type.
        if not isinstance(row["input"], str) or not isinstance(row["context"], str):
            shown = {k: "null" if row[k] is None else type(row[k]).__name__ for k in ("input", "context")}
            raise PcbenchError(f"{where}: input and context must be strings, \"\" where there is none (input is "
                               f"{shown['input']}, context {shown['context']})")
        all_classes = row.get("all_classes")
        _id = row.get("_id")
        return Example(
            id=str(_id) if _id else f"{name}-{index}",
            question=str(row["input"] or ""),
            # One passage holding the context verbatim, so example.context == the official `context`.
            passages=(Passage(text=str(row["context"] or "")),),
            answers=answers,
            meta={
                "dataset": dataset,
                "length": row.get("length"),
                "language": row.get("language"),
                "all_classes": [str(c) for c in all_classes] if all_classes else None,
                # Summaries, code lines and counts are not spans of the context: the harness's
                # answer-in-context diagnostic would mislead there, so it is skipped.
                "long_answers": METRICS[dataset] in {"rouge", "rouge_zh", "code_sim", "count"},
            },
        )

    # ---- per-example protocol ------------------------------------------------------------

    @staticmethod
    def _dataset_of(example: Example) -> str:
        dataset = example.meta.get("dataset")
        if dataset not in TEMPLATES:
            raise PcbenchError(f"example {example.id} has meta['dataset']={dataset!r}; allowed: {', '.join(ALL)}")
        return str(dataset)

    def template_for(self, example: Example) -> str:
        return self.template if self.template is not None else TEMPLATES[self._dataset_of(example)]

    def max_new_tokens_for(self, example: Example) -> int:
        if self.max_new_tokens is not None:
            return int(self.max_new_tokens)
        return MAX_NEW_TOKENS[self._dataset_of(example)]

    def chat_for(self, example: Example) -> bool:
        return bool(self.chat) if self.chat is not None else self._dataset_of(example) not in NO_CHAT

    def first_line_for(self, example: Example) -> bool:
        return bool(self.first_line) if self.first_line is not None else self._dataset_of(example) in FIRST_LINE

    def stop_at_newline_for(self, example: Example) -> bool:
        if self.stop_at_newline is not None:
            return bool(self.stop_at_newline)
        return self._dataset_of(example) in STOP_AT_NEWLINE

    def prompt(self, example: Example, context: str) -> str:
        # pred.py renders template.format(**sample); its templates use only {context} and {input}.
        values = {"context": context, "input": example.question, "question": example.question}
        return self.template_for(example).format_map(values)

    def request(self, example: Example, context: str) -> Request:
        return Request(
            self.prompt(example, context),
            self.max_new_tokens_for(example),
            self.chat_for(example),
            self.stop_at_newline_for(example),
            context_end(lambda c: self.prompt(example, c), context),
        )

    def instruction_spans(self, example: Example) -> tuple[str, ...]:
        """The few-shot datasets' demonstrations (their whole context, split where a line opens one)."""
        opener = DEMONSTRATION_OPENERS.get(self._dataset_of(example))
        if opener is None:
            return ()
        context = example.context
        starts = [m.start() for m in re.finditer("^" + re.escape(opener), context, flags=re.MULTILINE)]
        return tuple(context[a:b].strip() for a, b in zip(starts, [*starts[1:], len(context)]) if context[a:b].strip())

    def postprocess(self, prediction: str, example: Example) -> str:
        if self.first_line_for(example):
            return prediction.lstrip("\n").split("\n")[0]
        return prediction

    # ---- aggregation ---------------------------------------------------------------------

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """Official per-dataset scores (100 x mean, 2 decimals), category means and AVG.

        avg = mean of the category means (the published LongBench "AVG" when the 16 English and
        code datasets are run); avg_flat = plain mean over datasets; avg_en (only when Chinese
        datasets are present) = avg over the English and code datasets alone. With longbench_e,
        length_buckets gives each dataset's score per `length` bucket (0-4k, 4-8k, 8k+; an empty
        bucket is left out rather than reported as NaN) and length_buckets_avg their mean.
        Scores are those of the first metric in task.metrics (the official "longbench" one).
        """
        key = self.metrics[0]
        values: dict[str, list[float]] = defaultdict(list)
        buckets: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for example, record in rows:
            score = (record.get("scores") or {}).get(key)
            if score is None:
                continue
            dataset = self._dataset_of(example)
            values[dataset].append(float(score))
            length = example.meta.get("length")
            if self.longbench_e and length is not None:
                buckets[dataset][length_bucket(float(length))].append(float(score))
        if not values:
            return {}
        per_dataset = {d: 100 * fmean(values[d]) for d in ALL if d in values}
        summary: dict[str, Any] = {"datasets": {d: round(s, 2) for d, s in per_dataset.items()}}
        summary.update(_averages(per_dataset))
        english = {d: s for d, s in per_dataset.items() if d not in CHINESE}
        if english and len(english) < len(per_dataset):
            summary["avg_en"] = _averages(english)["avg"]
        if self.longbench_e:
            by_bucket = {
                d: {b: round(100 * fmean(buckets[d][b]), 2) for b, _ in LENGTH_BUCKETS if buckets[d][b]}
                for d in per_dataset
            }
            summary["length_buckets"] = by_bucket
            summary["length_buckets_avg"] = {
                b: round(fmean(s[b] for s in by_bucket.values() if b in s), 2)
                for b, _ in LENGTH_BUCKETS
                if any(b in s for s in by_bucket.values())
            }
        return summary


def _averages(per_dataset: dict[str, float]) -> dict[str, Any]:
    """Category means (over the datasets present) and their mean; inputs are unrounded 0-100 scores."""
    categories = {
        category: fmean(per_dataset[d] for d in members if d in per_dataset)
        for category, members in CATEGORIES.items()
        if any(d in per_dataset for d in members)
    }
    return {
        "categories": {c: round(v, 2) for c, v in categories.items()},
        "avg": round(fmean(categories.values()), 2),
        "avg_flat": round(fmean(per_dataset.values()), 2),
    }
