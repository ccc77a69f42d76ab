"""The benchmarks: ``uv run python bench/run.py [--quick]`` runs bench/peers.py.

Kept under this name for the command in the project's README; see peers.py and
README.md in this folder.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    script = str(Path(__file__).resolve().with_name("peers.py"))
    sys.argv[0] = script
    runpy.run_path(script, run_name="__main__")
