"""Whole training steps compiled for the CPU against the interpreter's step: loss, correct count,
new parameters and new optimizer state, with parameters and state updated in place."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.nn.layers import (AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU,
                               Sequential, Tanh)
from gradviz.nn.optim import Adam, Momentum
from gradviz.nn.step import build_train_step, encode_targets


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(request, tmp_path_factory):
    """Generated modules go to pytest's cache directory, kept between runs (content-addressed:
    a changed lowering compiles afresh; `--cache-clear` empties it), as in test_compile.py; with
    `-p no:cacheprovider`, to this session's temporary directory."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        path = cache.mkdir("gradviz-kernels")
    else:
        path = tmp_path_factory.getbasetemp() / "gradviz-cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADVIZ_CACHE", str(path))
    yield path
    mp.undo()


def _feeds(step, model, batch, shape, seed):
    rng = np.random.default_rng(seed)
    params = {p: np.asarray(v, step.x.dtype) for p, v in model.init(rng).items()}
    x = rng.normal(size=(batch, *shape)).astype(step.x.dtype)
    target = encode_targets(rng.integers(0, 10, batch), 10, "classification", step.x.dtype)
    feeds = {step.x: x, step.target: target, step.lr: np.asarray(0.05, step.x.dtype), **params}
    feeds.update({s: np.array(step.initial_state[s.name]) for s in step.state})
    for m in step.masks:
        feeds[m] = (rng.uniform(size=m.shape) > 0.3).astype(m.dtype)
    return feeds


def check_step(model, shape, optimizer, dtype, rtol, steps=2):
    batch = 8
    step = build_train_step(model, batch, shape, optimizer=optimizer, dtype=dtype)
    f = gv.compile(step)
    feeds = _feeds(step, model, batch, shape, seed=3)
    reference = dict(feeds)
    carried = (*step.params, *step.state)
    for _ in range(steps):   # the second step reads what the first wrote in place
        want = gv.evaluate(step.graph.outputs, reference)
        got = f(feeds)
        for node, value in zip(step.graph.outputs, got):
            np.testing.assert_allclose(value, want[node], rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=str(node))
        new = (*step.new_params, *step.new_state)
        outputs = dict(zip(step.graph.outputs, got))
        for leaf, node in zip(carried, new):
            if leaf.shape:
                assert outputs[node] is feeds[leaf]   # updated in place
            reference[leaf] = want[node]
            feeds[leaf] = outputs[node]


def test_mlp_step_float64_matches_interpreter():
    model = Sequential(Flatten(), Linear(12, 16, dtype="float64"), Tanh(),
                       Dropout(0.3), Linear(16, 10, dtype="float64"))
    check_step(model, (3, 4), Momentum(), "float64", rtol=1e-10)


def test_cnn_step_float32_matches_interpreter():
    model = Sequential(Conv2d(2, 4, 3, padding=1), ReLU(), MaxPool2d(2),
                       Conv2d(4, 6, 3, stride=2, padding=1), Tanh(), AvgPool2d(2),
                       Flatten(), Linear(6, 10))
    check_step(model, (2, 8, 8), Adam(), "float32", rtol=2e-4)
