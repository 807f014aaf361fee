"""The one place models are loaded: each (kind, id, revision, dtype, device) once per process.

A compressor or a reader describes the model it needs with a `ModelSpec` and a loader function;
the pool resolves packaged aliases (smollm2, minilm) to local folders, picks the device, loads once
and keeps the model warm for every later cell of a local sweep. A reader and a compressor that name
the same model share one copy. Each model has the roles that asked for it (the first part of its
spec's key: "reader", "compressor"); loading onto an accelerator first frees the models there that
only the other role uses, so a reader's weights and a compressor's never compete for one GPU.
On the CPU nothing is freed.

A model that cannot be loaded (no network and not cached, a wrong path) is one line naming the
id and the config key that takes a local path.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Device
from pcbench.core.local_models import hub_reachable, resolve

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
    key: str = "compressor.model"  # its first part is the role: compressor or reader
    options: tuple[tuple[str, Any], ...] = ()  # loader settings that make another model (vLLM's window)

    @property
    def role(self) -> str:
        return self.key.split(".", 1)[0]


Dtype = Literal["float32", "bfloat16", "float16", "auto"]


@dataclass
class ModelKnobs:
    """The model block of every compressor or reader that loads a model, declared once: its knobs'
    values come from the YAML, and `model_spec` is the one way they become what the pool loads.

    model: a hub id, a local folder or a packaged alias (smollm2, minilm). revision: a hub commit or
    tag. dtype: the weights' dtype (auto: the checkpoint's). device: auto picks cuda, then mps, then
    cpu. trust_remote_code: let the checkpoint run its own modelling code (off unless the user says
    so; a method may trust more only by its own stated rule, as Provence does its authors' ids).
    A class narrows `dtype` by declaring it again.
    """

    model: str
    revision: str | None
    dtype: Dtype
    device: Device
    trust_remote_code: bool

    MODEL_KEY: ClassVar[str] = "compressor.model"  # the config key named in load errors

    def model_spec(self, name: str | None = None, *, trust_remote_code: bool | None = None,
                   key: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> ModelSpec:
        """The spec of `name` (default: the `model` knob) under this block's revision, dtype, device
        and remote-code policy."""
        trust = self.trust_remote_code if trust_remote_code is None else trust_remote_code
        return ModelSpec(name or self.model, self.revision, self.dtype, self.device, trust,
                         key=key or self.MODEL_KEY, options=options)


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _no_weight_bars() -> None:
    """transformers draws a "Loading weights" bar per load (a dozen in a demo sweep); the pool says
    "loaded X on D" once instead."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()


def torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class Models:
    """A process-wide pool of loaded models."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self._roles: dict[tuple[Any, ...], set[str]] = {}
        # Seconds spent loading, so callers can keep loading out of per-example timings.
        self.loading_seconds = 0.0
        self.loads: Counter[str] = Counter()  # loads per model name in this process

    def get(self, spec: ModelSpec, load: Callable[[str, ModelSpec, str], T]) -> T:
        """The model for `spec`, built by `load(path, spec, device)` on first use."""
        slot = self._slot(spec, load)
        device = slot[3]  # picked once, in the slot
        if slot not in self._loaded:
            if device != "cpu":
                self.release(device.split(":")[0], only=_other(spec.role))
            started = time.perf_counter()
            path = resolve(spec.name)
            _no_weight_bars()
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
            self.loads[spec.name] += 1
        self._roles.setdefault(slot, set()).add(spec.role)
        loaded: T = self._loaded[slot][1]
        return loaded

    def has(self, spec: ModelSpec, load: Callable[..., Any]) -> bool:
        """Whether the model `spec` and `load` name is loaded now (no load is triggered)."""
        return self._slot(spec, load) in self._loaded

    def _slot(self, spec: ModelSpec, load: Callable[..., Any]) -> tuple[Any, ...]:
        return (spec.name, spec.revision, spec.dtype, pick_device(spec.device), spec.trust_remote_code, spec.options,
                load.__module__, load.__qualname__)

    def loaded(self) -> list[str]:
        return [slot[0] for slot in self._loaded]

    def release(self, device: str | None = None, only: str | None = None) -> None:
        """Free the models on `device` (every device when None), or only those that role `only`
        alone uses, and the accelerator's cache."""
        doomed = [slot for slot, (on, _) in self._loaded.items()
                  if (device is None or on.split(":")[0] == device)
                  and (only is None or self._roles.get(slot, set()) == {only})]
        for slot in doomed:
            _, model = self._loaded.pop(slot)
            self._roles.pop(slot, None)
            shutdown = getattr(model, "shutdown", None)  # a serving engine (vLLM) frees its workers
            if callable(shutdown):
                shutdown()
        if doomed:
            free_accelerator_memory()


def _other(role: str) -> str:
    return "compressor" if role == "reader" else "reader"


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
    offline_failure = any(m in reason for m in ("couldn't connect", "cached files", "OfflineModeIsEnabled",
                                                  "LocalEntryNotFound", "offline mode"))
    if offline_failure and not hub_reachable():
        return PcbenchError(f"cannot load {key}={name!r}: not a local folder, and not in the hub cache while offline "
                            f"(no network, or HF_HUB_OFFLINE=1); give a local folder: {key}=PATH")
    return PcbenchError(f"cannot load {key}={name!r} ({type(exc).__name__}: {reason}); "
                        f"with no network, give a local folder: {key}=PATH")


MODELS = Models()
