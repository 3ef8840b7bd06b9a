"""The CUDA suite on Numba's simulator, from the plain `python -m pytest` run.

The simulator must be switched on before Numba is first imported, which this process has already
done, so the suite runs in a child process with `NUMBA_ENABLE_CUDASIM=1`. On a machine with a
GPU, `tests/cuda` runs for real in this process instead, and this test steps aside.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CUDA_TESTS = Path(__file__).parent / "cuda"


def _gpu_available() -> bool:
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver, no toolkit: no GPU
        return False


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="already running under the simulator")
def test_cuda_suite_on_the_simulator():
    if _gpu_available():
        pytest.skip("a real GPU is present: tests/cuda runs on it in this process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-m", "pytest", str(CUDA_TESTS),
                           "-p", "no:cacheprovider"], env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    assert done.returncode == 0, tail
    assert " passed" in tail, tail
