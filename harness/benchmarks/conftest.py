import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
if "SCALING_DATA_DIR" not in os.environ and SHARED.is_dir():
    os.environ["SCALING_DATA_DIR"] = str(SHARED)
