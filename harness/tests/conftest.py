import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

# Tests read published data from ../shared/data (never from the network) unless told otherwise.
if "SCALING_DATA_DIR" not in os.environ and SHARED.is_dir():
    os.environ["SCALING_DATA_DIR"] = str(SHARED)


@pytest.fixture(scope="session")
def chinchilla_data():
    from replications.chinchilla.data import CHINCHILLA, load_chinchilla

    if not CHINCHILLA.path.exists():
        pytest.skip("Chinchilla data not in the cache; set SCALING_DATA_DIR to a folder holding chinchilla/")
    return load_chinchilla()


@pytest.fixture(scope="session")
def routing_runs():
    from replications.routing.data import ROUTING, load_routing

    if not ROUTING.path.exists():
        pytest.skip("routing data not in the cache; set SCALING_DATA_DIR to a folder holding routing/")
    return load_routing()


@pytest.fixture(scope="session")
def bnsl_benchmark():
    from replications.bnsl.data import LANG, VISION, load_benchmark

    if not (VISION.path.exists() and LANG.path.exists()):
        pytest.skip("benchmark data not in the cache; set SCALING_DATA_DIR to a folder holding bnsl/")
    return load_benchmark()
