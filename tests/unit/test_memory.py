"""core/memory: a block's peak is its own, and nested blocks keep each other's peaks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pcbench.core.memory import MIB, measure, peak_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


def touched(mib: int) -> bytearray:
    block = bytearray(mib * MIB)
    block[::4096] = b"x" * len(block[::4096])  # every page written: resident, not just reserved
    return block


def test_a_block_sees_its_own_allocation() -> None:
    with measure() as meter:
        block = touched(64)
        del block
    rise = meter.rise()
    assert rise is not None and rise >= 60 * MIB


def test_nested_blocks_keep_their_peaks() -> None:
    """The inner block resets the high-water mark; the outer one must still see the peak reached
    before the inner block began, and the inner one only what came after."""
    stages: dict = {}
    with peak_memory(stages, "outer"):
        block = touched(96)
        del block  # freed: the resident set drops back, the peak stays
        with measure() as inner:
            small = touched(8)
            del small
    outer = stages["outer"]
    assert outer["rss_peak_mib"] - outer["rss_start_mib"] >= 90
    rise = inner.rise()
    assert rise is not None and rise < 60 * MIB


def test_energy_says_why_it_has_no_figure() -> None:
    """Without a CUDA device in use there is no figure and one reason; asked for every GPU of the
    node, NVML itself is asked (here it has no driver or no GPU to report, and says so)."""
    import torch

    from pcbench.core.energy import gpu_energy

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: benchmarks/gpu_check.py measures energy")
    with gpu_energy() as energy:
        pass
    assert energy.joules is None and energy.why_none == "no CUDA GPU in use"
    with gpu_energy(every_gpu=True) as energy:
        pass
    assert energy.joules is None and energy.why_none is not None and energy.why_none.startswith("NVML: ")
    assert "\n" not in energy.why_none


def test_largest_batch_finds_where_the_allocator_refuses(tmp_path: Path) -> None:
    """Under a real address-space limit, torch's CPU allocator refuses; the search finds the largest
    batch below it (doubling, then bisecting) and stops at its limit when nothing refuses."""
    import subprocess

    script = tmp_path / "oom.py"
    script.write_text(
        "import json, resource, torch\n"
        "from pcbench.core.memory import MIB, largest_batch, _status_kib\n"
        "size = _status_kib('VmSize') * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 256 * MIB, size + 256 * MIB))\n"
        "tried = []\n"
        "def attempt(n):\n"
        "    tried.append(n)\n"
        "    torch.empty(n * 8 * MIB, dtype=torch.uint8).fill_(1)\n"
        "print(json.dumps([largest_batch(attempt), tried]))\n"
        "tried = []\n"
        "print(json.dumps([largest_batch(attempt, limit=4), tried]))\n"
        "def broken(n):\n"
        "    raise ValueError('not memory')\n"
        "try:\n"
        "    largest_batch(broken)\n"
        "except ValueError:\n"
        "    print('propagated')\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, capped, broken = out.stdout.splitlines()
    (found, at_limit), tried = json.loads(first)
    assert 4 <= found < 32 and at_limit is False  # 8 MiB a step under a 256 MiB margin
    assert tried[:3] == [1, 2, 4] and found in tried and found + 1 in tried  # the edge itself was tried
    assert json.loads(capped) == [[4, True], [1, 2, 4]] and broken == "propagated"
