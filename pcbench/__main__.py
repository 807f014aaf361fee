"""`python -m pcbench ...`: the `pcbench` command, from any Python that can import pcbench (e.g. the
vLLM environment `make vllm-env` builds, which has no console scripts of its own)."""

import sys

from pcbench.app import entry

if __name__ == "__main__":  # vLLM's workers re-import the main module: run only in the parent
    sys.exit(entry())
