"""The on-disk kernel cache: a second process compiles nothing, and damaged entries (source or
Numba's files) are rebuilt, never a crash."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, numpy as np, gradviz as gv
x, w = gv.var("x", (6, 3)), gv.param("w", (3, 2))
loss = gv.mean(gv.sigmoid(x @ w) ** 2)
f = gv.compile([loss, gv.grad(loss, w)])
rng = np.random.default_rng(0)
env = {"x": rng.normal(size=(6, 3)), "w": rng.normal(size=(3, 2))}
got = f(env)
want = gv.evaluate([loss, gv.grad(loss, w)], env)

print(json.dumps({**f.cache_stats(), "value": got[0], "want": want[loss]}))
"""


def run_in_new_process(cache: Path) -> dict:
    env = {**os.environ, "GRADVIZ_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["value"] == pytest.approx(result["want"], rel=1e-12)
    return result


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kernel-cache")
    first = run_in_new_process(cache)
    assert first["misses"] > 0 and first["hits"] == 0
    return cache


def test_second_process_loads_compiled_code(warm_cache):
    second = run_in_new_process(warm_cache)
    assert second["misses"] == 0 and second["hits"] > 0


def _kernel_files(cache: Path, pattern: str) -> list[Path]:
    found = sorted((cache / "kernels").glob(pattern))
    assert found, f"no {pattern} in the cache"
    return found


def test_damaged_source_is_rewritten(warm_cache):
    source, = _kernel_files(warm_cache, "gradviz_k_*.py")
    source.write_text("this is not python (\n")
    run_in_new_process(warm_cache)
    assert source.read_text().startswith('"""gradviz generated kernels')
    # Numba keys its cache by the source's content, so the restored file's code still applies
    assert run_in_new_process(warm_cache)["misses"] == 0


def test_damaged_numba_files_are_rebuilt(warm_cache):
    for path in _kernel_files(warm_cache, "__pycache__/gradviz_k_*.nb*"):
        path.write_bytes(b"\x80\x04garbage")
    assert run_in_new_process(warm_cache)["misses"] > 0    # dropped and compiled again
    assert run_in_new_process(warm_cache)["misses"] == 0
