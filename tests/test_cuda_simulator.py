"""The CUDA suite on Numba's simulator, from the plain `python -m pytest` run.

The simulator must be switched on before Numba is first imported, which this process has already
done, so the suite runs in a child process with `NUMBA_ENABLE_CUDASIM=1`. On a machine with a
GPU, `tests/cuda` runs for real in this process instead, and this test steps aside.
"""
import os
import subprocess
import sys
from xml.etree import ElementTree
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
def test_cuda_suite_on_the_simulator(tmp_path):
    if _gpu_available():
        pytest.skip("a real GPU is present: tests/cuda runs on it in this process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    report = tmp_path / "cuda.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", str(CUDA_TESTS), "-p", "no:cacheprovider",
                           f"--junitxml={report}"], env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    assert done.returncode == 0, tail
    cases = ElementTree.parse(report).getroot().iter("testcase")
    ran, skipped = [], []
    for case in cases:
        where = f"{case.get('classname')}::{case.get('name')}"
        skip = case.find("skipped")
        (ran if skip is None else skipped).append((where, "" if skip is None else skip.get("message")))
    # Only the NVVM checks (marked `nvvm`) may skip on the simulator: they compile with NVIDIA's
    # real compiler, which the simulator replaces; every other test of the suite must have run.
    for where, reason in skipped:
        assert "the simulator is on (NVVM is not used)" in reason, (where, reason)
    modules = {where.split("::")[0].rsplit(".", 1)[-1] for where, _ in ran}
    assert {"test_cuda_kernels", "test_cuda_train"} <= modules, modules
    assert len(ran) >= 100, f"only {len(ran)} CUDA tests ran:\n{tail}"
