"""CUDA tests run on a real GPU, or on Numba's CUDA simulator in their own process:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

(the variable must be set before Numba is first imported, so not from inside a test run). In a
plain `python -m pytest` on a machine without a GPU, every test here is skipped, with the reason.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/op_specs.py

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _no_device_reason():
    if SIMULATOR:
        return None
    try:
        from numba import cuda

        if cuda.is_available():
            return None
    except Exception:  # noqa: BLE001 - any CUDA setup problem means "no GPU here"
        pass
    return "no CUDA GPU; run NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda for the simulator"


def pytest_configure(config):
    config.addinivalue_line("markers", "nvvm: compiles with NVIDIA's NVVM; needs no GPU")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents
            and "nvvm" not in item.keywords]
    if not mine:
        return
    reason = _no_device_reason()
    if reason is not None:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """Generated modules go to this session's temporary directory, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADVIZ_CACHE", str(tmp_path_factory.getbasetemp() / "gradviz-cache"))
    yield
    mp.undo()

