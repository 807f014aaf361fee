"""pcbench: measure prompt compression for LLMs fairly and fast.

The Python API (pcbench/api.py), imported on first use so that `import pcbench.core` stays light:

    import pcbench
    out = pcbench.compress(pcbench.load_compressor("bm25", rate=0.25), context, question="...")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["Compression", "PcbenchError", "compress", "compress_many", "load_compressor", "load_reader",
           "load_task", "run_cell"]

if TYPE_CHECKING:
    from pcbench.api import Compression, compress, compress_many, load_compressor, load_reader, load_task, run_cell
    from pcbench.core.errors import PcbenchError


def __getattr__(name: str) -> Any:
    if name == "PcbenchError":
        from pcbench.core.errors import PcbenchError

        return PcbenchError
    if name in __all__:
        from pcbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'pcbench' has no attribute {name!r}")
