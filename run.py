"""Run one cell from a checkout: `python run.py task=hotpotqa compressor=bm25 compressor.rate=0.5`.

The same command as the installed `pcbench` console script (pcbench/app.py); every Hydra
flag works (`--cfg job`, `--cfg job -p compressor`, `-m`, ...).
"""

import sys

from pcbench.app import entry

if __name__ == "__main__":
    sys.exit(entry())
