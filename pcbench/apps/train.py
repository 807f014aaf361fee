"""Train a pruner on a task's own gold evidence: `pcbench-train [options]`.

Two styles from one loop:
- `provence` (default): a cross-encoder over (normalised question, "title\\npassage") learns a
  keep label per passage token (1 inside a gold evidence sentence) and a relevance score per
  passage (1 for a gold passage) in one forward pass, as Provence does (whose token labels come
  from an LLM and whose ranking loss is a distillation; here both come from the dataset's gold).
  By default the relevance loss is listwise over all of a question's passages (`--rank-loss`):
  pointwise on a few sampled distractors, the ranking head ranked HotpotQA's held-out passages
  below bm25 (see the README's measurements);
- `llmlingua2`: a token classifier over the passage alone (or after the question with
  --question-aware), no ranking head;
- `sentinel`: no encoder is trained: a proxy causal LM (--proxy) gives each sentence Sentinel's
  attention features, and a standardised logistic regression learns the gold ones; the folder
  holds `sentinel.json` and loads with `compressor=sentinel compressor.model=PATH`.

Examples come through the project's task classes (any task whose passages carry gold evidence:
hotpotqa supporting facts, nq gold passages / answer sentences), split by question into train and
held-out parts with a seed. The saved folder is a token-classification checkpoint (+ its ranking
head), so it loads with `compressor=provence compressor.model=PATH` (native inference) and
`compressor=llmlingua2 compressor.model=PATH`. At the end the held-out split is compressed with
that same inference and sentence-level precision/recall of the kept evidence is written to
`evaluation.json`.

Offline default: all-MiniLM-L6-v2 (packaged) on ../shared/data/hotpotqa/hotpot_dev_distractor_800.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pcbench.conf import CONF_DIR
from pcbench.runners.cli import duration

CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = CHECKOUT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"
log = logging.getLogger("pcbench.apps.train")


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments end in one `error: ...` line (exit 2), like the rest of pcbench."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see pcbench-train --help)", file=sys.stderr)
        raise SystemExit(2)


STYLES = ("provence", "llmlingua2", "sentinel")  # the options of conf/train/ (base.yaml is what they share)


def parser() -> argparse.ArgumentParser:
    """The command line. Every value not given comes from conf/train/STYLE.yaml (see `settings`)."""
    p = OneLineParser(prog="pcbench-train", description=__doc__.split("\n\n")[0],
                      epilog="Defaults: pcbench/conf/train/STYLE.yaml (and base.yaml, which every style extends).",
                      argument_default=argparse.SUPPRESS)
    p.add_argument("--style", choices=STYLES, default="provence",
                   help="sentinel: a logistic-regression probe over a proxy LM's attention (--proxy)")
    p.add_argument("--out", required=True, help="folder for the trained pruner (checkpoints under it)")
    p.add_argument("--task", help="a conf/task option with gold evidence (hotpotqa, nq)")
    p.add_argument("--path", help="task.path: the local data file (tasks that read one; generated tasks ignore it)")
    p.add_argument("--task-set", action="append", metavar="KNOB=VALUE",
                   help="a task knob, as run.py's task.KNOB=VALUE (repeatable), e.g. --task-set seed=7 for "
                        "training examples that the evaluated ones (seed 42) do not hold")
    p.add_argument("--limit", type=int, help="first N examples of the task only")
    p.add_argument("--proxy", help="sentinel style: the proxy causal LM (hub id, folder, smollm2)")
    p.add_argument("--question-aware", action="store_true", help="llmlingua2 style: question first in the input")
    p.add_argument("--encoder", help="hub id, local folder or packaged alias (minilm)")
    p.add_argument("--heldout", type=float, help="fraction of questions held out for evaluation")
    p.add_argument("--seed", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, help="pairs per step (listwise: whole questions, up to this many pairs)")
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=float, help="fraction of steps with a rising learning rate")
    p.add_argument("--labels", choices=["sentences", "passages"],
                   help="what a kept token is: in a gold evidence sentence, or anywhere in a gold passage")
    p.add_argument("--negatives", type=int, help="non-gold passages per question (all gold ones are used); -1 for all")
    p.add_argument("--max-length", type=int, help="tokens per (question, passage) input")
    p.add_argument("--rank-weight", type=float, help="weight of the relevance loss (provence style)")
    p.add_argument("--rank-loss", choices=["pointwise", "listwise"],
                   help="relevance loss: pointwise = binary cross-entropy per passage; listwise = softmax over "
                        "each question's passages (a batch holds whole questions), the gold ones as targets")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (0: none)")
    p.add_argument("--eval-limit", type=int, help="held-out questions evaluated (default all)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device")
    return p


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """The flags given, over conf/train/STYLE.yaml composed as every other config is (`+train=STYLE`)."""
    from omegaconf import OmegaConf

    from pcbench.runners.compose import compose

    defaults = OmegaConf.to_container(compose([f"+train={args.style}"]).train, resolve=True)
    assert isinstance(defaults, dict)
    for key, value in defaults.items():
        if not hasattr(args, str(key)):
            setattr(args, str(key), value)
    if args.path is None:
        args.path = str(DEFAULT_DATA)
    return args


def check(args: argparse.Namespace) -> None:
    from pcbench.core.errors import PcbenchError
    from pcbench.core.knobs import DeviceName

    for flag in ("heldout", "epochs", "lr", "warmup", "rank_weight"):
        value = getattr(args, flag)
        if not math.isfinite(value):
            raise PcbenchError(f"--{flag.replace('_', '-')}={value} is not allowed; allowed: a finite number")
    device_problem = DeviceName().problem(args.device)
    if device_problem:
        raise PcbenchError(f"--device={args.device!r} is not allowed; allowed: {device_problem}")
    if not str(args.out).strip():  # Path("") is the current folder: a trainer would write its files there
        raise PcbenchError("--out='' is empty; give a folder for the trained pruner")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PcbenchError(f"--out={out} is a file, not a folder; give a folder for the trained pruner")
    rules = [(0 < args.heldout < 1, f"--heldout={args.heldout} must be in (0, 1)"),
             (args.epochs > 0, f"--epochs={args.epochs} must be > 0"),
             (args.threads is None or args.threads >= 1, f"--threads={args.threads} must be >= 1"),
             (args.eval_limit is None or args.eval_limit >= 1, f"--eval-limit={args.eval_limit} must be >= 1"),
             (args.max_steps is None or args.max_steps >= 1, f"--max-steps={args.max_steps} must be >= 1"),
             (args.batch_size >= 1, f"--batch-size={args.batch_size} must be >= 1"),
             (args.lr > 0, f"--lr={args.lr} must be > 0"),
             (0 <= args.warmup < 1, f"--warmup={args.warmup} must be in [0, 1)"),
             (args.negatives >= -1, f"--negatives={args.negatives} must be >= -1"),
             (32 <= args.max_length <= 8192, f"--max-length={args.max_length} must be in [32, 8192]"),
             (args.rank_weight >= 0, f"--rank-weight={args.rank_weight} must be >= 0"),
             (args.limit is None or args.limit >= 2, f"--limit={args.limit} must be >= 2"),
             (args.checkpoint_every >= 0, f"--checkpoint-every={args.checkpoint_every} must be >= 0")]
    for ok, message in rules:
        if not ok:
            raise PcbenchError(message)
    if args.question_aware and args.style != "llmlingua2":
        raise PcbenchError("--question-aware is for --style llmlingua2 (provence style always reads the question)")


# --- data -----------------------------------------------------------------------------------------

def load_examples(task: str, path: str | None, limit: int | None, knobs: Sequence[str] = ()) -> list[Any]:
    """Examples through the project's own task class, exactly as `run.py task=... task.path=...
    task.KNOB=VALUE` loads them."""
    from pcbench.core.build import build
    from pcbench.core.errors import PcbenchError
    from pcbench.runners.compose import option_node

    if not (CONF_DIR / "task" / f"{task}.yaml").exists():
        raise PcbenchError(f"--task={task!r} is not a task in conf/task/")
    bad = next((k for k in knobs if "=" not in k or k.startswith("=")), None)
    if bad is not None:
        raise PcbenchError(f"--task-set={bad!r} is not allowed; give KNOB=VALUE, e.g. seed=7")
    from hydra.errors import HydraException

    try:
        node = option_node("task", task, [f"task.{k}" for k in knobs])
    except HydraException as exc:  # an unknown knob, a value that does not parse
        raise PcbenchError(f"--task-set {' '.join(knobs)}: {str(exc).splitlines()[0]}") from None
    if "path" in node:  # generated tasks (niah, ruler_synth) read no file
        node.path = path
    node.limit = limit
    examples = build(node, "task").load()
    usable = [e for e in examples if any(p.evidence or p.gold for p in e.passages)]
    if len(usable) < 2:
        raise PcbenchError(f"--task={task}: {len(usable)} example(s) with gold evidence; need at least 2 "
                           "(tasks with evidence: hotpotqa, nq)")
    return usable


def split(examples: list[Any], heldout: float, seed: int) -> tuple[list[Any], list[Any]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n = max(1, min(len(order) - 1, round(len(order) * heldout)))
    held = set(order[:n])
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def sentence_labels(example: Any, index: int, whole_passages: bool = False) -> list[tuple[int, int, int]]:
    """(start, end, label) per sentence of passage `index`: 1 for a gold evidence sentence (every
    sentence of a gold passage when the dataset names no sentences, or with `whole_passages`)."""
    from pcbench.compressors.units import split_units
    from pcbench.core.example import Example

    passage = example.passages[index]
    units = split_units(Example(example.id, example.question, (passage,), ()), "sentence")
    gold = {s.strip() for s in passage.evidence}
    whole = (passage.gold or bool(gold)) and (whole_passages or not gold)
    return [(u.start, u.end, int(whole or u.text.strip() in gold)) for u in units]


@dataclass
class Pair:
    question: str | None
    prefix: str  # title line the model reads before the text (not labelled)
    text: str
    sentences: list[tuple[int, int, int]]
    relevant: int
    group: int = 0  # which question the pair belongs to (listwise batches hold whole questions)


def pairs_of(examples: Sequence[Any], style: str, question_aware: bool, negatives: int, rng: random.Random,
             whole_passages: bool = False) -> list[Pair]:
    from pcbench.models.encoders import normalize_question

    out = []
    for number, example in enumerate(examples):
        gold = [j for j, p in enumerate(example.passages) if p.text.strip() and (p.gold or p.evidence)]
        other = [j for j, p in enumerate(example.passages) if p.text.strip() and j not in gold]
        if negatives >= 0:
            other = rng.sample(other, min(negatives, len(other)))
        for j in sorted(gold + other):
            passage = example.passages[j]
            if style == "provence":
                question: str | None = normalize_question(example.question)
                prefix = f"{passage.title}\n" if passage.title else ""
            else:
                question = example.question if question_aware else None
                prefix = ""
            out.append(Pair(question, prefix, passage.text, sentence_labels(example, j, whole_passages),
                            int(j in gold), number))
    return out


def encode(pairs: Sequence[Pair], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Padded inputs, token labels (-100 outside the passage text) and relevance labels."""
    import torch

    firsts = [p.question for p in pairs]
    seconds = [p.prefix + p.text for p in pairs]
    both = firsts[0] is not None
    args = (firsts, seconds) if both else (seconds,)
    enc = tokenizer(*args, truncation="only_second" if both else True, max_length=max_length, padding=True,
                    return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping").tolist()
    labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
    target = 1 if both else 0
    for row, pair in enumerate(pairs):
        skip = len(pair.prefix)
        for pos, seq in enumerate(enc.sequence_ids(row)):
            start, end = offsets[row][pos]
            if seq != target or end <= start or start < skip:
                continue
            anchor = end - 1 - skip
            labels[row, pos] = next((lab for s, e, lab in pair.sentences if s <= anchor < e), 0)
    enc["labels"] = labels
    enc["relevant"] = torch.tensor([float(p.relevant) for p in pairs])
    return dict(enc)


# --- training -------------------------------------------------------------------------------------


class progress:  # noqa: N801 - used like tqdm, which it wraps on a terminal
    """Progress over `items`: tqdm's bar on a terminal; in a log file (a SLURM job, `> train.log`),
    one plain line at most every `every` seconds and at the end (step, share, rate, ETA, loss), since a
    bar drawn with carriage returns shows nothing there until the run ends."""

    def __init__(self, items: Sequence[Any], what: str, unit: str, every: float = 30.0) -> None:
        self.items, self.what, self.unit, self.every = items, what, unit, every
        self.total = len(items)
        self.postfix = ""
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(items, desc=what, unit=unit)

    def __iter__(self) -> Any:
        if self.bar is not None:
            yield from self.bar
            return
        start = last = time.monotonic()
        print(f"{self.what}: {self.total} {self.unit}s", file=sys.stderr, flush=True)
        for done, item in enumerate(self.items, start=1):
            yield item
            now = time.monotonic()
            if now - last >= self.every or done == self.total:
                last = now
                rate = (now - start) / done
                eta = "" if done == self.total else f", ETA {duration(rate * (self.total - done))}"
                loss = f", {self.postfix}" if self.postfix else ""
                print(f"{self.what}: {done}/{self.total} {self.unit}s ({100 * done // self.total}%), "
                      f"{rate:.2f} s/{self.unit}{eta}{loss}", file=sys.stderr, flush=True)

    def set_postfix(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from pcbench.core.local_models import resolve
    from pcbench.models.encoders import RANKING_FILE, ranking_head
    from pcbench.models.pool import pick_device

    check(args)
    if args.style == "sentinel":
        return train_sentinel(args)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    examples = load_examples(args.task, args.path, args.limit, args.task_set)
    train_set, held = split(examples, args.heldout, args.seed)
    rng = random.Random(args.seed)
    pairs = pairs_of(train_set, args.style, args.question_aware, args.negatives, rng, args.labels == "passages")
    path = resolve(args.encoder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForTokenClassification.from_pretrained(path, num_labels=2, id2label={0: "drop", 1: "keep"},
                                                                label2id={"drop": 0, "keep": 1})
    except (OSError, ValueError) as exc:
        from pcbench.core.errors import PcbenchError

        raise PcbenchError(f"cannot load --encoder={args.encoder!r} ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:160]}); give a local folder") from None
    hidden = model.config.hidden_size
    ranking = ranking_head(hidden, hidden, getattr(model.config, "pooler_hidden_act", "gelu")) \
        if args.style == "provence" else None
    model.to(device).train()
    params = list(model.parameters())
    if ranking is not None:
        ranking.to(device).train()
        params += list(ranking.parameters())
    groups = question_groups(pairs) if args.rank_loss == "listwise" and ranking is not None else None
    if groups is None:
        per_epoch = math.ceil(len(pairs) / args.batch_size)
    else:  # whole questions per batch
        per_epoch = math.ceil(len(groups) / max(1, args.batch_size // max(map(len, groups.values()))))
    steps = args.max_steps or max(1, math.ceil(per_epoch * args.epochs))
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warm = max(1, int(steps * args.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    losses: list[float] = []
    order: list[int] = []  # what the next batches draw from: pair indices, or question numbers (listwise)
    start = time.perf_counter()
    bar = progress(range(steps), "train", "step")
    for step in bar:
        batch = next_batch(order, pairs, groups, args.batch_size, rng)
        enc = encode(batch, tokenizer, args.max_length)
        labels, relevant = enc.pop("labels").to(device), enc.pop("relevant").to(device)
        result = model(**{k: v.to(device) for k, v in enc.items()}, labels=labels, output_hidden_states=True)
        loss = result.loss
        if ranking is not None:
            rank = ranking(result.hidden_states[-1])
            loss = loss + args.rank_weight * rank_loss(rank, relevant, [p.group for p in batch], groups is not None)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < steps:
            save(out / "checkpoint", model, ranking, tokenizer, save_file, RANKING_FILE)
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    save(out, model, ranking, tokenizer, save_file, RANKING_FILE)
    summary = {"task": args.task, "path": args.path, "style": args.style, "labels": args.labels,
               "encoder": args.encoder,
               "question_aware": args.question_aware or args.style == "provence", "seed": args.seed,
               "train_questions": len(train_set), "heldout_questions": len(held), "train_pairs": len(pairs),
               "steps": steps, "batch_size": args.batch_size, "rank_loss": args.rank_loss, "lr": args.lr,
               "max_length": args.max_length,
               "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(), "device": device,
               "loss_first": round(float(np.mean(losses[:10])), 4), "loss_last": round(float(np.mean(losses[-10:])), 4),
               "losses": [round(x, 4) for x in losses], "heldout_ids": [e.id for e in held]}
    summary["evaluation"] = evaluate(out, held[: args.eval_limit] if args.eval_limit is not None else held, args)
    (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary


def question_groups(pairs: Sequence[Pair]) -> dict[int, list[int]]:
    """Pair indices per question, in the order the pairs were made."""
    groups: dict[int, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.group, []).append(i)
    return groups


def next_batch(order: list[int], pairs: Sequence[Pair], groups: dict[int, list[int]] | None, size: int,
               rng: random.Random) -> list[Pair]:
    """The next batch, drawn from `order` (refilled with a fresh shuffle when it runs low): `size`
    pairs, or with `groups` whole questions while they fit in `size` pairs (at least one)."""
    if len(order) < (1 if groups is not None else size):
        pool = list(groups) if groups is not None else list(range(len(pairs)))
        rng.shuffle(pool)
        order += pool
    if groups is None:
        batch = order[:size]
        del order[:size]
        return [pairs[i] for i in batch]
    chosen: list[int] = []
    while order and (not chosen or len(chosen) + len(groups[order[0]]) <= size):
        chosen += groups[order.pop(0)]
    return [pairs[i] for i in chosen]


def rank_loss(logits: Any, relevant: Any, group_of: Sequence[int], listwise: bool) -> Any:
    """Pointwise: binary cross-entropy per passage. Listwise: per question, cross-entropy of the
    softmax over its passages against its gold ones (the mean of -log p over gold passages), as
    rerankers are trained with localised contrastive estimation (Gao et al. 2021); questions with
    no gold passage or nothing else to rank against are skipped."""
    import torch

    if not listwise:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, relevant)
    terms = []
    for group in dict.fromkeys(group_of):
        rows = torch.tensor([g == group for g in group_of], device=logits.device)
        target = relevant[rows]
        if 0 < target.sum() < len(target):
            terms.append(-(torch.log_softmax(logits[rows], dim=0) * target).sum() / target.sum())
    return torch.stack(terms).mean() if terms else logits.sum() * 0.0


def train_sentinel(args: argparse.Namespace) -> dict[str, Any]:
    """Sentinel's probe: the proxy's attention features of every sentence of the training questions
    (gold evidence sentences labelled 1), standardised, then a logistic regression (scikit-learn, as
    the reference trains it); saved as DIR/sentinel.json."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from pcbench.compressors.sentinel import Probe, sentence_features
    from pcbench.compressors.units import split_units
    from pcbench.models.causal import causal_lm
    from pcbench.models.pool import MODELS, ModelSpec

    examples = load_examples(args.task, args.path, args.limit, args.task_set)
    train_set, held = split(examples, args.heldout, args.seed)
    # The shared pool: the held-out evaluation, through the compressor, finds the proxy loaded.
    lm = causal_lm(MODELS, ModelSpec(args.proxy, None, "float32", args.device))
    max_tokens = _build("sentinel", model=args.out).max_tokens  # the YAML's window, as inference reads
    started = time.perf_counter()
    features: list[Any] = []
    labels: list[int] = []
    for example in progress(train_set, "attention features", "question"):
        units = split_units(example, "sentence")
        if units:
            features.append(sentence_features(lm, example, units, max_tokens))
            labels.extend(int(_is_gold(example, u)) for u in units)
    x, y = np.concatenate(features), np.asarray(labels)
    if len(set(y.tolist())) < 2:
        from pcbench.core.errors import PcbenchError

        raise PcbenchError(f"--task={args.task}: the training questions hold {'no' if not y.any() else 'only'} gold "
                           "sentences; need both kinds (more examples, or a task with sentence evidence)")
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(max_iter=2000, random_state=args.seed).fit(scaler.transform(x), y)
    layers = lm.layer_count
    probe = Probe(proxy=args.proxy, layers=layers, heads=x.shape[1] // layers,
                  mean=[float(v) for v in scaler.mean_], scale=[float(v) if v > 0 else 1.0 for v in scaler.scale_],
                  coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]),
                  trained={"task": args.task, "questions": len(train_set), "sentences": int(len(y)),
                           "gold_sentences": int(y.sum()), "seed": args.seed})
    out = Path(args.out)
    probe.save(out)
    summary: dict[str, Any] = {"style": "sentinel", "proxy": args.proxy, "task": args.task, "task_set": args.task_set,
                               "train_questions": len(train_set), "heldout_questions": len(held),
                               "train_sentences": int(len(y)), "train_gold_sentences": int(y.sum()),
                               "features": int(x.shape[1]), "train_seconds": round(time.perf_counter() - started, 1),
                               "heldout_ids": [e.id for e in held]}
    summary["evaluation"] = evaluate(out, held[: args.eval_limit] if args.eval_limit is not None else held, args)
    (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary


def save(folder: Path, model: Any, ranking: Any, tokenizer: Any, save_file: Any, ranking_file: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if ranking is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in ranking.state_dict().items()}
        save_file(state, str(folder / ranking_file))
    follow_umask(folder)


def follow_umask(folder: Path) -> None:
    """The files in `folder` readable as the user's umask says, as every result pcbench writes: the
    weights' writer creates them 0600, so a group-shared project could not read its own pruner."""
    mask = os.umask(0)
    os.umask(mask)
    for file in folder.iterdir():
        if file.is_file():
            file.chmod(0o666 & ~mask)


# --- evaluation -----------------------------------------------------------------------------------

def evaluate(folder: Path, examples: list[Any], args: argparse.Namespace,
             thresholds: Sequence[float] = (0.1, 0.3, 0.5)) -> dict[str, Any]:
    """Sentence-level precision/recall of kept gold evidence on held-out questions, through the
    very inference the compressors run (provence native, or llmlingua2 word scores per sentence)."""
    from pcbench.compressors.base import Env
    from pcbench.compressors.units import split_units
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import MODELS, Models

    if args.style == "sentinel":  # the proxy, already in the shared pool from training
        env = Env(load_tokenizer(args.proxy), models=MODELS)
    else:  # a fresh pool: the folder's weights were just written
        env = Env(load_tokenizer(str(folder)), models=Models())
    units = [split_units(e, "sentence") for e in examples]
    gold = [[_is_gold(e, u) for u in us] for e, us in zip(examples, units)]
    if args.style == "sentinel":
        compressor = _build("sentinel", model=str(folder), device=args.device)
        scores = compressor.score_batch(examples, units, env)
    elif args.style == "provence":
        compressor = _build("provence", model=str(folder), device=args.device)
        scores = [s[: len(us)] for s, us in zip(compressor.score_batch(examples, units, env), units)]
    else:
        compressor = _build("llmlingua2", model=str(folder), device=args.device, question_aware=args.question_aware)
        words = [compressor.units(e, env) for e in examples]
        word_scores = compressor.score_batch(examples, words, env)
        scores = [[_mean([s for w, s in zip(ws, wsc) if w.passage == u.passage and u.start <= w.start < u.end])
                   for u in us] for us, ws, wsc in zip(units, words, word_scores)]
    report: dict[str, Any] = {"questions": len(examples), "sentences": sum(map(len, units)),
                              "gold_sentences": sum(map(sum, gold)),
                              "rule": {"provence": "paper", "sentinel": "probe probability"}.get(args.style,
                                                                                           "mean word probability")}
    for t in thresholds:
        kept = [[s >= t for s in ss] for ss in scores]
        hit = sum(k and g for ks, gs in zip(kept, gold) for k, g in zip(ks, gs))
        n_kept = sum(map(sum, kept))
        n_gold = report["gold_sentences"]
        report[f"T={t}"] = {"precision": round(hit / n_kept, 4) if n_kept else None,
                            "recall": round(hit / n_gold, 4) if n_gold else None,
                            "kept_sentence_ratio": round(n_kept / max(1, report["sentences"]), 4)}
    return report


def _is_gold(example: Any, unit: Any) -> bool:
    passage = example.passages[unit.passage]
    gold = {s.strip() for s in passage.evidence}
    return unit.text.strip() in gold if gold else passage.gold


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _build(option: str, **knobs: Any) -> Any:
    from omegaconf import DictConfig, OmegaConf

    from pcbench.core.build import build
    from pcbench.runners.compose import option_node

    merged = OmegaConf.merge(option_node("compressor", option), knobs)
    assert isinstance(merged, DictConfig)
    return build(merged, "compressor")


def main(argv: Sequence[str] | None = None) -> int:
    from pcbench.core.errors import PcbenchError

    args = settings(parser().parse_args(argv))
    logging.basicConfig(level=logging.WARNING)
    if not sys.stderr.isatty():  # a log file: no carriage-return bars from the libraries (see `progress`)
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as transformers_logging

        disable_progress_bars()
        transformers_logging.disable_progress_bar()
    try:
        summary = train(args)
    except PcbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k not in ("losses", "heldout_ids")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
