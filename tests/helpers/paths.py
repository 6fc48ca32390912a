"""Where things are: the repository, the venv's executables, the unit tests' captured data."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
UNIT_FIXTURES = ROOT / "tests" / "unit" / "fixtures"
