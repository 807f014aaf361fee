"""LongBench v2 (Bai et al. 2024): 503 four-choice questions over 8K-2M-word contexts, as THUDM/LongBench's
`pred.py` and `result.py` run them. The step-by-step protocol and every difference: docs/tasks.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.records import ExampleRecord
from pcbench.core.requests import Request, context_end
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import drop_unaskable, hub_origin, hub_rows, records_with_origins, require_keys
from pcbench.tasks.longbench_v2_metrics import extract_choice

CHOICES = ("A", "B", "C", "D")
FIELDS = ("_id", "question", "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context")
# The prompt files' placeholders (prompts/*.txt), filled by plain replacement as pred.py does.
MARKERS = {"zero_shot": ("$DOC$", "$Q$"), "cot": ("$DOC$", "$Q$"), "cot_answer": ("$Q$", "$COT$"),
           "no_context": ("$Q$",), "rag": ("$DOC$", "$Q$")}


@dataclass
class LongBenchV2Task(Task):
    """LongBench v2's multiple-choice questions, read from the hub (THUDM/LongBench-v2 at `revision`) or
    a local file in its schema (data.json, a list, or JSONL), asked as `pred.py` asks them.

    cot: reason step by step (up to cot_max_new_tokens), then answer from that reasoning in a second
    request whose prompt omits the text (prompts/0shot_cot_ans.txt). no_context: the question alone
    (what the model knows without the text). rag: the first N of each item's `retrieved_context`
    chunks, in document order, as the context (items need the field). difficulty / length / domain:
    keep one subset (easy|hard, short|medium|long, a domain name). compensated: result.py's switch, a
    reply naming no letter scores 0.25. templates: the five prompt files, with their placeholders.
    """

    template: str | None  # type: ignore[assignment]  # null: the official prompts (templates)
    path: str | None
    hub_id: str
    revision: str | None
    split: str
    cot: bool
    no_context: bool
    rag: Annotated[int, Range(0)]
    difficulty: Literal["easy", "hard"] | None
    length: Literal["short", "medium", "long"] | None
    domain: str | None
    compensated: bool
    templates: dict[str, str]
    cot_max_new_tokens: Annotated[int, Range(1)]

    def __post_init__(self) -> None:
        if self.template is not None:
            raise PcbenchError("task.template is not used by LongBench v2; its prompts are task.templates.zero_shot, "
                               ".cot, .cot_answer, .no_context and .rag (the official prompt files)")
        self.templates = {str(k): str(v) for k, v in dict(self.templates).items()}
        for name, markers in MARKERS.items():
            template = self.templates.get(name)
            if template is None:
                raise PcbenchError(f"task.templates.{name} is missing; LongBench v2 needs {', '.join(MARKERS)}")
            missing = [m for m in markers if m not in template]
            if missing:
                raise PcbenchError(f"task.templates.{name} lacks {', '.join(missing)}; the official prompt files "
                                   f"mark where the text, question and choices go with $DOC$, $Q$, $C_A$..$C_D$")
        super().__post_init__()

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> list[Example]:
        if self.path is not None:
            rows = records_with_origins(Path(self.path).expanduser())
            source = str(self.path)
        else:
            source = f"{self.hub_id}:{self.split}"
            rows = [(hub_origin(source, i), row) for i, row in
                    enumerate(hub_rows(self.hub_id, None, self.split, self.revision,
                                       local="task.path=<LongBench v2's data.json>"))]
        wanted = {"difficulty": self.difficulty, "length": self.length, "domain": self.domain}
        examples = [self._example(where, row) for where, row in rows
                    if all(want is None or row.get(key) == want for key, want in wanted.items())]
        return drop_unaskable(examples, source)

    def _example(self, where: str, row: dict[str, Any]) -> Example:
        require_keys(where, row, FIELDS, "LongBench v2")
        if row["answer"] not in CHOICES:
            raise PcbenchError(f"{where}: answer is {row['answer']!r}; expected one of {', '.join(CHOICES)}")
        if self.rag > 0:
            chunks = row.get("retrieved_context")
            if not isinstance(chunks, list) or not chunks:
                raise PcbenchError(f"{where}: task.rag={self.rag} needs the item's retrieved_context (a list of "
                                   "{c_idx, content}); this item has none")
            chosen = sorted(chunks[: self.rag], key=lambda chunk: chunk["c_idx"])
            # pred.py: "Retrieved chunk {i}: {content}", joined by blank lines (the passages' own separator).
            passages = tuple(Passage(text=f"Retrieved chunk {i + 1}: {chunk['content']}")
                             for i, chunk in enumerate(chosen))
        else:
            passages = (Passage(text=str(row["context"]).strip()),)
        return Example(
            id=str(row["_id"]), question=str(row["question"]).strip(), passages=passages, answers=(row["answer"],),
            meta={"choices": {c: str(row[f"choice_{c}"]).strip() for c in CHOICES},
                  "difficulty": row.get("difficulty"), "length": row.get("length"), "domain": row.get("domain"),
                  "sub_domain": row.get("sub_domain"), "compensated": self.compensated,
                  # A letter is no span of the text: the answer-in-context diagnostic is skipped.
                  "long_answers": True})

    # -- asking ----------------------------------------------------------------------------------

    def _fill(self, template: str, example: Example, context: str, reasoning: str = "") -> str:
        # Plain replacement, in pred.py's order: braces in the text stay as they are, and a marker in
        # the text ("$Q$") is replaced too, as there.
        text = template.replace("$DOC$", context.strip()).replace("$Q$", example.question)
        for c in CHOICES:
            text = text.replace(f"$C_{c}$", example.meta["choices"][c])
        return text.replace("$COT$", reasoning)

    def _context_end(self, example: Example, context: str) -> int | None:
        """Where the context ends in the prompt: after the context as the replacement chain left it."""
        start = context_end(lambda c: self.prompt(example, c), "")
        return None if start is None else start + len(self._fill("$DOC$", example, context))

    def prompt(self, example: Example, context: str) -> str:
        # pred.py's order: rag's template first, then no_context's, then cot's (cot's two steps and
        # its longer first answer apply whichever template asked).
        mode = "rag" if self.rag > 0 else "no_context" if self.no_context else "cot" if self.cot else "zero_shot"
        return self._fill(self.templates[mode], example, context)

    def request(self, example: Example, context: str) -> Request:
        length = self.cot_max_new_tokens if self.cot else self.max_new_tokens
        return Request(self.prompt(example, context), length, self.chat, self.stop_at_newline,
                       self._context_end(example, context))

    def follow_up(self, example: Example, answer: str) -> Request | None:
        if not self.cot:
            return None
        # The second step reads the reasoning, not the text ("The text is too long and omitted here.").
        prompt = self._fill(self.templates["cot_answer"], example, "", answer.strip())
        return Request(prompt, self.max_new_tokens, self.chat, self.stop_at_newline, None)

    def postprocess(self, prediction: str, example: Example) -> str:
        return prediction.strip()

    # -- result.py ------------------------------------------------------------------------------

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """result.py's table: accuracy overall, by difficulty and by length (x100, one decimal), and the
        share of replies naming no letter."""
        groups: dict[str, list[float]] = defaultdict(list)
        unanswered = 0
        for example, record in rows:
            score = (record.get("scores") or {}).get("longbench_v2")
            if score is None:
                continue
            unanswered += extract_choice(record.get("prediction") or "") is None
            for group in ("overall", example.meta.get("difficulty"), example.meta.get("length")):
                if group:
                    groups[str(group)].append(float(score))
        if not groups:
            return {}
        table = {g: round(100 * sum(v) / len(v), 1) for g, v in groups.items()}
        return {"longbench_v2": {**{g: table[g] for g in ("overall", "easy", "hard", "short", "medium", "long")
                                    if g in table}, "no_letter": unanswered}}
