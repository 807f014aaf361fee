"""LongLLMLingua (Jiang et al., ACL 2024): LLMLingua made question-aware for long contexts.

Step by step, and every difference from the reference: docs/methods/token-pruning.md.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pcbench.compressors.base import Env, SurprisalJob, fetch_surprisals
from pcbench.compressors.llmlingua import Doc, LLMLingua, _mean
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.core.text import split_sentences
from pcbench.models.causal import CausalLM

ANSWER_HINT = " We can get the answer to this question in the given documents."


@dataclass
class LongLLMLingua(LLMLingua):
    """LongLLMLingua (Jiang et al., ACL 2024): LLMLingua made question-aware for long contexts.

    Documents ranked by the question's perplexity given each document, contrastive token scores
    (surprisal without minus with the question), dynamic per-document rates, document reordering
    and recovery of cut answer spans. Knobs: those of LLMLingua plus `condition_in_question`,
    `condition_compare`, `dynamic_context_compression_ratio`, `reorder_context`.
    """

    condition_in_question: Literal["none", "before", "after", "none_condition", "before_condition",
                                   "after_condition"]
    condition_compare: bool
    reorder_context: Literal["original", "sort", "two_stage"]
    dynamic_context_compression_ratio: Annotated[float, Range(0, 1)]
    max_document_tokens: Annotated[int, Range(1)]
    recovery: bool  # subsequence recovery of the reader's answer (restore), before it is scored

    question_aware: ClassVar[bool] = True
    version: ClassVar[int] = 3  # 2: coarse ranking scores the joined string, as llmlingua 0.2.2; 3: segments as its

    def condition(self) -> str:
        base = self.condition_in_question.replace("_condition", "")
        return "after" if base == "none" else base  # the reference's rule for this rank method

    def question_prefix(self) -> bool:
        return self.condition_compare or self.condition_in_question.endswith("_condition")

    def compare(self) -> bool:
        return self.condition_compare

    def reorder(self) -> str:
        return self.reorder_context

    def dynamic_ratio(self) -> float:
        return self.dynamic_context_compression_ratio

    def documents(self, example: Example, scorer: CausalLM) -> list[Doc]:
        docs: list[Doc] = []
        for i, passage in enumerate(example.passages):
            if not passage.text.strip():
                continue
            if len(scorer.encode(passage.text)) <= self.max_document_tokens:
                docs.append(Doc(i, passage.title, passage.text))
                continue
            sentences = list(passage.sentences) if passage.sentences else split_sentences(passage.text)
            chunk, size = "", 0
            for sentence in sentences:
                n = len(scorer.encode(sentence))
                if chunk and size + n > self.max_document_tokens:
                    docs.append(Doc(i, "" if any(d.passage == i for d in docs) else passage.title, chunk))
                    chunk, size = "", 0
                chunk, size = chunk + sentence, size + n
            if chunk:
                docs.append(Doc(i, "" if any(d.passage == i for d in docs) else passage.title, chunk))
        return docs

    def rank_job(self, docs: list[Doc], question: str, scorer: CausalLM) -> SurprisalJob:
        return self.conditioned_job([d.render() for d in docs], question + ANSWER_HINT, scorer)

    def ranking(self, scores: list[float]) -> list[tuple[int, float]]:
        return sorted(enumerate(scores), key=lambda x: x[1])  # the question is least surprising: best

    def output_order(self, used: list[int], ranked: list[tuple[int, float]]) -> list[int]:
        if self.reorder_context == "original":
            return sorted(used)
        if self.reorder_context == "two_stage":  # best at both ends, worst in the middle
            return used[0::2] + used[1::2][::-1]
        return list(used)

    def sentence_scores(self, sentences: list[str], question: str, scorer: CausalLM, env: Env) -> list[float]:
        return self.conditioned_ppl(sentences, question, scorer, env)

    def conditioned_ppl(self, texts: list[str], question: str, scorer: CausalLM, env: Env) -> list[float]:
        [scores] = fetch_surprisals(env.store, scorer, [self.conditioned_job(texts, question, scorer)],
                                    self.batch_size, bos=False)
        return list(scores)

    def conditioned_job(self, texts: list[str], question: str, scorer: CausalLM) -> SurprisalJob:
        """Mean surprisal of the question after each text (`after`) or of each text after the
        question (`before`); budget-free, so cached across rates.

        As llmlingua 0.2.2's get_condition_ppl: the two strings joined and tokenized as ONE string
        (the boundary tokens are the joined text's own), and the mean surprisal of the tokens after
        the first len(ids(condition)) (its condition_pos_id = that length - 1).
        """
        mode = self.condition()
        key = {"stage": "lm_conditioned_ppl", "scorer": self.scorer_key(), "mode": mode, "question": question,
               "texts": texts, "rule": "joined"}
        seqs, starts = [], []
        for text in texts:
            first, second = (text, question) if mode == "after" else (question, text)
            joined = scorer.encode(first + second, special=True)
            start = len(scorer.encode(first, special=True))
            # Longer than the window (rare: documents are cut to max_document_tokens): the
            # reference cuts the end off; here the head goes, so the scored part stays whole.
            cut = max(0, len(joined) - scorer.window)
            seqs.append(joined[cut:])
            starts.append(max(1, start - cut))
        return key, seqs, lambda arrays: [_mean(s[a:]) for s, a in zip(arrays, starts)]

    def restore(self, prediction: str, example: Example, compressed: str, env: Env) -> str:
        """Subsequence recovery: each longest run of answer words found in the compressed text is
        replaced by the shortest original span (in scorer tokens) containing most of its tokens in
        order with gaps of at most 10 tokens. The record keeps the raw answer too."""
        if not self.recovery:
            return prediction
        scorer = env.causal_lm(self.model_spec())
        return recover(scorer, example.context, compressed, prediction)


def recover(scorer: CausalLM, original: str, compressed: str, response: str) -> str:
    original_ids = scorer.encode(original)
    where: dict[int, list[int]] = defaultdict(list)
    for i, token in enumerate(original_ids):
        where[token].append(i)

    def match(phrase: str) -> str:
        ids = scorer.encode(phrase)
        if not ids:
            return phrase
        best, best_count, best_len = None, 1, float("inf")
        for left in where.get(ids[0], []):
            right, count = left, 1
            for token in ids[1:]:
                spots = where.get(token, [])
                j = bisect.bisect_right(spots, right)
                if j >= len(spots) or spots[j] - right > 10:
                    continue
                count, right = count + 1, spots[j]
            if count > best_count or (count == best_count and right - left + 1 < best_len):
                best, best_count, best_len = (left, right + 1), count, right - left + 1
        return phrase if best is None else scorer.decode(original_ids[best[0]:best[1]])

    words = response.split(" ")
    out, i = [], 0
    while i < len(words):
        if words[i] not in compressed:
            out.append(words[i])
            i += 1
            continue
        j = i
        while j + 1 < len(words) and " ".join(words[i:j + 2]) in compressed:
            j += 1
        out.append(match(" ".join(words[i:j + 1])))
        i = j + 1
    return " ".join(out)

