"""Kernels keyed by structure, not sizes: the batch size, the last partial batch, layer widths,
the learning rate and the seed are runtime values of the compiled step, so a model compiled once
trains at other sizes with no Numba compile at all (counted by Numba's own cache statistics, in
fresh processes)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gradviz as gv
from gradviz.compiler.cpu.backend import cpu_schedule, generate
from gradviz.core.sizes import Size, as_code, broadcast_shapes, code
from gradviz.nn.models import build_model
from gradviz.nn.optim import SGD, Adam
from gradviz.nn.step import build_train_step


def step_source(model="mlp", hidden="64", batch=32, shape=(64,), optimizer=SGD):
    net = build_model(model, shape, 10, hidden=hidden)
    step = build_train_step(net, batch, net.input_shape, optimizer=optimizer())
    updates = dict(zip((*step.params, *step.state), (*step.new_params, *step.new_state)))
    return generate(cpu_schedule(tuple(step.graph.outputs), updates), "float32")


def test_size_is_an_int_that_remembers_its_formula():
    batch, width = Size.named("batch", 32), Size.named("width", 5)
    area = batch * width + 1
    assert area == 161 and isinstance(area, Size) and repr(area) == "161" and f"{area}" == "161"
    assert code(area) == "((d_batch * d_width) + 1)"
    with as_code():
        assert f"{area}" == "((d_batch * d_width) + 1)"
        assert "{0}".format(1 / batch) == "(F(1) / F(d_batch))"   # divided in the code's type
    assert (batch - 7.0) == 25.0 and not isinstance(batch - 7.0, Size)   # floats give floats
    assert np.empty((batch, width)).shape == (32, 5)
    assert broadcast_shapes((batch, 1), (width,)) == (32, 5)
    assert isinstance(broadcast_shapes((1, width), (batch, 5))[1], Size)


@pytest.mark.parametrize("model,shape,sizes", [
    ("mlp", (64,), [("64", 32), ("65", 32), ("65", 64), ("65", 17)]),
    ("cnn", (1, 8, 8), [("64", 32), ("33", 5)]),
])
def test_one_source_for_every_size(model, shape, sizes):
    sources = {step_source(model, hidden, batch, shape) for hidden, batch in sizes}
    assert len(sources) == 1


def test_other_structures_get_other_sources():
    assert step_source(hidden="64") != step_source(hidden="64,32")       # one more layer
    assert step_source(optimizer=SGD) != step_source(optimizer=Adam)


@pytest.mark.parametrize("hidden,batch", [("16", 8), ("9", 3)])
def test_named_sizes_compute_what_the_interpreter_does(hidden, batch):
    net = build_model("mlp", (6,), 3, hidden=hidden, dtype="float64")
    step = build_train_step(net, batch, net.input_shape, optimizer=SGD(), dtype="float64")
    rng = np.random.default_rng(1)
    feeds = {p: rng.normal(size=p.shape) * 0.3 for p in step.params}
    feeds[step.x] = rng.normal(size=step.x.shape)
    feeds[step.target] = np.eye(3)[rng.integers(0, 3, batch)]
    feeds[step.lr] = 0.1
    want = gv.evaluate(step.graph.outputs, feeds)
    got = gv.compile(step.graph.outputs)({k: np.array(v, copy=True) for k, v in feeds.items()})
    for node, value in zip(step.graph.outputs, got):
        np.testing.assert_allclose(value, want[node], rtol=1e-10, atol=1e-12)


TRAIN = r"""
import json, sys
from gradviz.nn.training import TrainConfig, Trainer
hidden, batch, lr, seed = sys.argv[1:]
config = TrainConfig(model="mlp", data="moons", hidden=(int(hidden),), epochs=2, batch=int(batch),
                     lr=float(lr), optimizer="sgd", seed=int(seed))
trainer = Trainer(config, device="cpu")
trainer.run()
stats = [runner.cache_stats() for _, runner in trainer._steps.values()]
print(json.dumps({"steps": len(stats), "hits": sum(s["hits"] for s in stats),
                  "misses": sum(s["misses"] for s in stats)}))
"""


def _train(cache, *args) -> dict:
    env = {**os.environ, "GRADVIZ_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", TRAIN, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_new_sizes_lr_and_seed_compile_nothing(tmp_path):
    first = _train(tmp_path, 8, 32, 0.5, 0)   # moons: 140 training examples, 4 x 32 + 12
    assert first["steps"] == 2 and first["misses"] > 0
    # other widths, batches (and last partial batches), learning rates and seeds
    for hidden, batch, lr, seed in [(9, 32, 0.5, 0), (9, 48, 0.5, 0), (5, 64, 0.1, 3)]:
        run = _train(tmp_path, hidden, batch, lr, seed)
        assert run["misses"] == 0 and run["hits"] > 0, (hidden, batch, lr, seed, run)
