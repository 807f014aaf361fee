"""pcbench's native Provence on OpenProvence checkpoints against OpenProvence's own inference code
(hotchpotch/open_provence, `open_provence/modeling_open_provence_standalone.py`, the file its hub
checkpoints ship as remote code).

OpenProvence is not on PyPI: put that file at
`.bench-env/open_provence/modeling_open_provence_standalone.py` (or set OPENPROVENCE_SRC); without it
this comparison is skipped with that line. It runs unmodified.

- harness, not algorithm: OpenProvence is written against transformers 4.57 (its uv.lock), whose
  tokenizers had `build_inputs_with_special_tokens` and `create_token_type_ids_from_sequences`;
  transformers 5 dropped both from fast tokenizers, so they are given back here exactly as 4.57's
  `PreTrainedTokenizerBase` wrote them (the pair concatenated, no special tokens: the case for which
  OpenProvence adds [CLS] and [SEP] itself, as for ModernBERT's tokenizer);
- checkpoint: the hub cannot be reached here, so a tiny random one is built with OpenProvence's own
  classes (`OpenProvenceConfig`, `OpenProvenceModel`, ModernBERT backbone, 2 layers, hidden 32) and
  saved as its `save_pretrained` writes it (its state dict, its config's dict); pcbench then loads
  that folder natively (no code of it run), so the layout is read as OpenProvence writes it. The
  tokenizer is a byte-level BPE of ModernBERT's kind with its special tokens (SmolLM2's vocabulary;
  ModernBERT's own is not on this machine);
- inputs: the shared HotpotQA dev file's first N questions, each passage given to `process()` as
  pre-split sentences (pcbench's units), so both sides score the same sentences; titles off
  (`title=None`; pcbench `title=none`), the question as written (pcbench `normalize_question=false`);
- compared at thresholds 0.3 to 0.7 (a random model's keep probabilities sit near 0.5): the kept
  sentences of every passage, each sentence's mean keep probability and each passage's reranking
  score (sigmoid of the ranking logit). One known difference: OpenProvence tokenizes each sentence
  on its own and joins the token lists; pcbench tokenizes the passage once, so the two differ where
  a sentence boundary falls inside one BPE pre-token (a sentence splitter's artifact such as "F.S.C."
  then ".").

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/openprovence_reference.py`
prints them (`--limit N`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_common import BENCH_ENV, HOTPOT, ROOT  # beside this file

SOURCE = Path(os.environ.get("OPENPROVENCE_SRC",
                             BENCH_ENV / "open_provence" / "modeling_open_provence_standalone.py"))
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def restore_transformers4_tokenizer_methods() -> None:
    """transformers 4.57's base implementations of two methods OpenProvence calls (see above)."""
    from transformers import PreTrainedTokenizerFast

    def build_inputs_with_special_tokens(self: Any, token_ids_0: list[int],
                                         token_ids_1: list[int] | None = None) -> list[int]:
        return token_ids_0 if token_ids_1 is None else token_ids_0 + token_ids_1

    def create_token_type_ids_from_sequences(self: Any, token_ids_0: list[int],
                                             token_ids_1: list[int] | None = None) -> list[int]:
        cls_len = int(getattr(self, "cls_token_id", None) is not None)
        sep_len = int(getattr(self, "sep_token_id", None) is not None)
        if token_ids_1 is None:
            return [0] * (cls_len + len(token_ids_0) + sep_len)
        return [0] * (cls_len + len(token_ids_0) + sep_len) + [1] * (len(token_ids_1) + sep_len)

    for name, method in (("build_inputs_with_special_tokens", build_inputs_with_special_tokens),
                         ("create_token_type_ids_from_sequences", create_token_type_ids_from_sequences)):
        if not hasattr(PreTrainedTokenizerFast, name):
            setattr(PreTrainedTokenizerFast, name, method)


def reference_module() -> Any:
    restore_transformers4_tokenizer_methods()
    spec = importlib.util.spec_from_file_location("modeling_open_provence_standalone", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_checkpoint(module: Any, folder: Path) -> Any:
    """A tiny random OpenProvence model made and saved by OpenProvence's own classes."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT / "tests"))
    from support.models import modernbert_tokenizer, tiny_modernbert_config

    tokenizer = modernbert_tokenizer()
    tokenizer_folder = folder / "tokenizer"
    tokenizer.save_pretrained(tokenizer_folder)
    backbone = tiny_modernbert_config(tokenizer).to_dict()
    config = module.OpenProvenceConfig(base_model_config=backbone, tokenizer_name_or_path=str(tokenizer_folder),
                                       pruning_config={"hidden_size": 32, "num_labels": 2}, num_labels=1)
    torch.manual_seed(0)
    model = module.OpenProvenceModel(config)
    # What save_pretrained writes: the state dict and the config's dict (transformers 5's own
    # save_pretrained refuses a config holding `max_length`, which OpenProvenceConfig always has).
    target = folder / "checkpoint"
    target.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target / "model.safetensors"))
    (target / "config.json").write_text(json.dumps(config.to_dict()))
    tokenizer.save_pretrained(target)
    return model.eval()


def run(limit: int = 30) -> list[tuple[str, str, str]]:
    if not HOTPOT.is_file():
        return [("provence on OpenProvence checkpoints", "skipped", f"{HOTPOT} is absent")]
    if not SOURCE.is_file():
        return [("provence on OpenProvence checkpoints vs OpenProvence's process()", "skipped",
                 f"OpenProvence's modeling_open_provence_standalone.py is not at {SOURCE} (copy it from "
                 "github.com/hotchpotch/open_provence, or set OPENPROVENCE_SRC)")]
    from pcbench.api import load_compressor, load_task
    from pcbench.compressors.base import Env
    from pcbench.compressors.units import split_units
    from pcbench.core.tokenizer import load_tokenizer

    module = reference_module()
    examples = load_task("hotpotqa", path=str(HOTPOT), limit=limit).load()
    env = Env(load_tokenizer("smollm2"))
    with tempfile.TemporaryDirectory() as scratch:
        theirs_model = build_checkpoint(module, Path(scratch))
        checkpoint = str(Path(scratch) / "checkpoint")
        ours = load_compressor("provence", model=checkpoint, device="cpu", implementation="native", title="none",
                               normalize_question=False, threshold=0.5)
        units = [split_units(e, "sentence") for e in examples]
        started = time.perf_counter()
        scores = ours.score_batch(examples, units, env)
        our_seconds = time.perf_counter() - started
        same = {t: 0 for t in THRESHOLDS}
        passages = sentences_compared = sentences_equal = 0
        worst_probability = worst_rank = 0.0
        their_seconds = 0.0
        for example, us, mine in zip(examples, units, scores):
            present = sorted({u.passage for u in us})
            sentences = [[u.text for u in us if u.passage == j] for j in present]
            per_passage = [[s for u, s in zip(us, mine) if u.passage == j] for j in present]
            ranks = mine[len(us):]
            started = time.perf_counter()
            outputs = {t: theirs_model.process(example.question, sentences, title=None, threshold=t,
                                               return_sentence_texts=True, return_sentence_metrics=True,
                                               zero_score_when_empty=False, show_progress=False,
                                               enable_warnings=False) for t in THRESHOLDS}
            their_seconds += (time.perf_counter() - started) / len(THRESHOLDS)
            first = outputs[THRESHOLDS[0]]
            for k in range(len(present)):
                passages += 1
                their_probabilities = first["sentence_probabilities"][k]
                gaps = [abs(a - b) for a, b in zip(per_passage[k], their_probabilities)]
                worst_probability = max(worst_probability, *gaps)
                sentences_compared += len(gaps)
                sentences_equal += sum(gap < 1e-4 for gap in gaps)
                worst_rank = max(worst_rank, abs(ranks[k] - float(first["reranking_score"][k])))
                for t in THRESHOLDS:
                    kept_ours = [s for s, score in zip(sentences[k], per_passage[k]) if score >= t]
                    kept_theirs = [s for s in outputs[t]["kept_sentences"][k] if s.strip()]
                    same[t] += kept_ours == kept_theirs
    agree = ", ".join(f"{same[t]}/{passages} at {t}" for t in THRESHOLDS)
    return [(f"provence (native) vs OpenProvence's process(), {len(examples)} HotpotQA questions",
             f"same kept sentences: {agree}",
             f"sentence probabilities equal (within 1e-4) for {sentences_equal}/{sentences_compared} sentences "
             f"(largest difference {worst_probability:.1e}: OpenProvence tokenizes each sentence on its own, pcbench "
             f"the passage, which differs where a sentence boundary falls inside one BPE token); reranking scores "
             f"within {worst_rank:.1e}; "
             f"tiny random checkpoint saved by OpenProvence's classes; scoring {our_seconds:.1f} s (ours, batched) vs "
             f"{their_seconds:.1f} s (process(), one question at a time)")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=30)
    for name, value, note in run(parser.parse_args().limit):
        print(f"{name}: {value}  ({note})")
