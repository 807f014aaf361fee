"""Energy a block of work draws on the NVIDIA GPUs this process uses, from NVML's cumulative
per-device counter (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded;
Volta and newer). The figure is the whole device's, other processes on it included, and the
counter updates every few tens of milliseconds: read it for stages of seconds, not for one prompt.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Energy:
    joules: float | None = None
    why_none: str | None = None  # where joules is None: why it could not be read


def _cuda_devices() -> list[str] | None:
    """The UUIDs of the CUDA devices torch sees (None: no CUDA in use)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def _handles(nvml: Any, uuids: list[str]) -> list[Any]:
    """NVML's handles for those devices, matched by UUID (NVML numbers devices without regard to
    CUDA_VISIBLE_DEVICES)."""
    handles = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = nvml.nvmlDeviceGetUUID(handle)
        if (uuid.decode() if isinstance(uuid, bytes) else uuid).removeprefix("GPU-") in uuids:
            handles.append(handle)
    if len(handles) != len(uuids):
        raise LookupError(f"found {len(handles)} of the {len(uuids)} CUDA devices among NVML's")
    return handles


@contextmanager
def gpu_energy(every_gpu: bool = False) -> Iterator[Energy]:
    """Measure the joules the block draws on this process's GPUs, or with `every_gpu` on every GPU
    NVML sees (a server in another process: pcbench-serving); None (and why) where it cannot."""
    energy = Energy()
    uuids = None if every_gpu else _cuda_devices()
    if uuids is None and not every_gpu:
        energy.why_none = "no CUDA GPU in use"
        yield energy
        return
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = ([pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
                   if uuids is None else _handles(pynvml, uuids))
        start = sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles)
    except Exception as exc:  # noqa: BLE001 - no driver, an older GPU, NVML missing: no figure, said why
        energy.why_none = f"NVML: {exc or type(exc).__name__}"
        yield energy
        return
    try:
        yield energy
    finally:
        try:
            used = sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles) - start
            energy.joules = round(used / 1000, 1)
        except Exception as exc:  # noqa: BLE001
            energy.why_none = f"NVML: {exc or type(exc).__name__}"
