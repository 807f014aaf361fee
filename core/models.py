"""The one place models are loaded: each (kind, id, revision, dtype, device) once per process.

A compressor describes the model it needs with a `ModelSpec` and a loader function; the pool
resolves packaged aliases (smollm2, minilm) to local folders, picks the device, loads once and
keeps the model warm for every later cell of a local sweep. The runner frees a device's models
only when the reader is about to load onto that same accelerator.

A model that cannot be loaded (no network and not cached, a wrong path) is one line naming the
id and the config key that takes a local path.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.errors import PcbenchError
from core.local_models import resolve

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """What to load. `key` is the config key that names it, for error messages."""

    name: str  # a hub id, a local folder, or a packaged alias (smollm2, minilm)
    revision: str | None = None
    dtype: str = "float32"
    device: str = "auto"  # auto: cuda, then mps, then cpu
    trust_remote_code: bool = False
    key: str = "compressor.model"


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class Models:
    """A process-wide pool of loaded models."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Any, ...], tuple[str, Any]] = {}
        # Seconds spent loading, so callers can keep loading out of per-example timings.
        self.loading_seconds = 0.0

    def get(self, spec: ModelSpec, load: Callable[[str, ModelSpec, str], T]) -> T:
        """The model for `spec`, built by `load(path, spec, device)` on first use."""
        device = pick_device(spec.device)
        slot = (spec.name, spec.revision, spec.dtype, device, spec.trust_remote_code, load.__module__,
                load.__qualname__)
        if slot not in self._loaded:
            started = time.perf_counter()
            path = resolve(spec.name)
            try:
                model = load(path, spec, device)
            except PcbenchError:
                raise
            except (OSError, ValueError, ImportError) as exc:
                raise cannot_load(spec.key, spec.name, exc) from None
            finally:
                self.loading_seconds += time.perf_counter() - started
            log.info("loaded %s on %s", spec.name, device)
            self._loaded[slot] = (device, model)
        return self._loaded[slot][1]  # type: ignore[return-value]

    def loaded(self) -> list[str]:
        return [slot[0] for slot in self._loaded]

    def release(self, device: str | None = None) -> None:
        """Free every model on `device` (all models when None) and the accelerator's cache."""
        doomed = [slot for slot, (on, _) in self._loaded.items() if device is None or on.split(":")[0] == device]
        for slot in doomed:
            del self._loaded[slot]
        if doomed:
            free_accelerator_memory()


def free_accelerator_memory() -> None:
    """Collect dropped models and hand CUDA's cached blocks back, so the next model fits."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cannot_load(key: str, name: str, exc: BaseException) -> PcbenchError:
    """One line for a model or tokenizer that does not load, naming the config key that picks it."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        return PcbenchError(f"{key}={name!r}: no such folder; give an existing local folder ({key}=PATH), "
                            "a hub id or a packaged alias (smollm2, minilm)")
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    if "trust_remote_code" in reason:
        return PcbenchError(f"cannot load {key}={name!r}: it needs its own modeling code; "
                            f"set {key.rsplit('.', 1)[0]}.trust_remote_code=true if you trust it ({reason})")
    return PcbenchError(f"cannot load {key}={name!r} ({type(exc).__name__}: {reason}); "
                        f"with no network, give a local folder: {key}=PATH")


MODELS = Models()
