"""MeetingBank as LLMLingua-2 evaluates on it (Pan et al. 2024; microsoft/LLMLingua's
experiments/llmlingua2/evaluation/eval_meetingbank_qa.py and eval_meetingbank_summary.py): questions
on, and summaries of, city-council meeting transcripts. The protocol and every difference: docs/tasks.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import drop_unaskable, hub_origin, hub_rows, records_with_origins, require_keys


@dataclass
class MeetingBankTask(Task):
    """MeetingBank's transcripts, from the hub (`microsoft/MeetingBank-QA-Summary` at `revision`) or a
    local file of its samples (a JSON list, a JSON object of samples as LLMLingua's scripts save them,
    or JSONL; fields idx, prompt, gpt4_summary, QA_pairs). mode: qa (one example per question of a
    meeting, scored by LLMLingua's qa_score) or summary (one per meeting, against GPT-4's summary)."""

    mode: Literal["qa", "summary"]
    path: str | None
    hub_id: str
    revision: str | None
    split: str
    transcript_field: str

    def read(self) -> list[Example]:
        if self.path is not None:
            rows = self._file_rows(Path(self.path).expanduser())
            source = str(self.path)
        else:
            source = f"{self.hub_id}:{self.split}"
            data = hub_rows(self.hub_id, None, self.split, self.revision, local="task.path=<MeetingBank samples>")
            rows = [(hub_origin(source, i), row) for i, row in enumerate(data)]
        examples = []
        for where, row in rows:
            examples += self._examples(where, row)
        return drop_unaskable(examples, source, need_question=self.mode == "qa")

    @staticmethod
    def _file_rows(file: Path) -> list[tuple[str, dict[str, Any]]]:
        if file.suffix == ".json" and file.is_file():
            data = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # LLMLingua's scripts save {idx: sample}
                return [(f"{file}: sample {key}", row) for key, row in data.items()]
        return records_with_origins(file)

    def _examples(self, where: str, row: dict[str, Any]) -> list[Example]:
        need = ("idx", self.transcript_field, "QA_pairs" if self.mode == "qa" else "gpt4_summary")
        require_keys(where, row, need, "MeetingBank")
        transcript = (Passage(text=str(row[self.transcript_field])),)
        if self.mode == "summary":
            return [Example(id=str(row["idx"]), question="", passages=transcript, answers=(str(row["gpt4_summary"]),),
                            meta={"long_answers": True})]
        pairs = row["QA_pairs"]
        if not isinstance(pairs, list):
            raise PcbenchError(f"{where}: QA_pairs is {type(pairs).__name__}; expected a list of {{question, answer}}")
        return [Example(id=f"{row['idx']}-q{k}", question=str(pair["question"]), passages=transcript,
                        answers=(str(pair["answer"]),)) for k, pair in enumerate(pairs)]

    def prompt(self, example: Example, context: str) -> str:
        # The scripts' templates: {transcript} and {question}, no spaces added.
        return self.template.format_map({"context": context, "question": example.question,
                                         "input": example.question})
