"""Kernels keyed by structure, not sizes: the batch size, the last partial batch, layer widths,
the learning rate and the seed (and image sizes, when named: `named_images()` or
GRADVIZ_NAMED_IMAGES=1) are runtime values of the compiled step, so a model compiled once trains
at other sizes with no Numba compile at all (counted by Numba's own cache statistics, in fresh
processes)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gradviz as gv
from gradviz.compiler.cpu.backend import cpu_schedule, generate
from gradviz.core.sizes import Size, as_code, broadcast_shapes, code, image_sizes, named_images
from gradviz.nn.models import build_model
from gradviz.nn.optim import SGD, Adam
from gradviz.nn.step import build_train_step


def step_source(model="mlp", hidden="64", batch=32, shape=(64,), optimizer=SGD, **options):
    net = build_model(model, shape, 10, hidden=hidden)
    step = build_train_step(net, batch, net.input_shape, optimizer=optimizer())
    updates = dict(zip((*step.params, *step.state), (*step.new_params, *step.new_state)))
    return generate(cpu_schedule(tuple(step.graph.outputs), updates), "float32", **options)


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


def test_image_sizes_fold_into_short_formulas():
    with named_images(False):
        assert image_sizes(28, 20) == (28, 20) and not isinstance(image_sizes(28, 20)[0], Size)
    with named_images():
        h, w = image_sizes(28, 20)
    assert (h, w) == (28, 20) and code(h) == "d_h" and code(w) == "d_w"
    assert code((h + 2 * 1 - 3) // 1 + 1) == "d_h"          # a 3x3 conv, padding 1, keeps it
    pooled = (h - 2) // 2 + 1
    assert pooled == 14 and code(pooled) == "(((d_h - 2) // 2) + 1)"   # // parenthesized
    assert code(pooled - 5 + 1) == "(((d_h - 2) // 2) - 3)" and pooled - 5 + 1 == 10
    odd = Size.named("h", 9)
    assert (odd - 2) // 2 + 1 == 4 and 2 * ((odd - 2) // 2 + 1) - 1 == 7
    with as_code():
        assert f"{3 * pooled}" == "(3 * (((d_h - 2) // 2) + 1))"
        assert eval(f"{3 * pooled - 7}", {"d_h": 9}) == 3 * ((9 - 2) // 2 + 1) - 7


@pytest.mark.parametrize("model,batch,shapes", [
    ("cnn", 32, [(1, 8, 8), (1, 12, 12), (1, 9, 13)]),
    ("lenet", 64, [(1, 32, 32), (1, 36, 40)]),
    ("mlp", 32, [(1, 8, 8), (1, 28, 28)]),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_one_source_for_every_image_size(model, batch, shapes, threads):
    """Height and width are named sizes: convolutions, pools, their gradients, scratch sizes
    and the flattened width are formulas of them, in the serial and the parallel module."""
    options = dict(threads=threads, parallel_min=64) if threads > 1 else {}
    with named_images():
        hidden = None if model == "lenet" else "64"
        sources = {step_source(model, hidden, batch, shape, **options) for shape in shapes}
    assert len(sources) == 1
    source, = sources
    assert "d_h" in source and "d_w" in source
    if model != "mlp":
        # image sizes are not digits of the code: no loop runs over a constant height or width
        for shape in shapes:
            assert f"range({shape[1]})" not in source and f"< {shape[2]} " not in source


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


IMAGES = r"""
import json, sys
import numpy as np
from gradviz.compiler.cpu.backend import compile_cpu
from gradviz.nn.models import build_model
from gradviz.nn.optim import SGD
from gradviz.nn.step import NumpyRunner, build_train_step
h, w, batch = map(int, sys.argv[1:])
net = build_model("cnn", (1, h, w), 10, hidden="16", dtype="float64")
step = build_train_step(net, batch, net.input_shape, optimizer=SGD(), dtype="float64")
rng = np.random.default_rng(h * 100 + w)
feeds = dict(net.init(rng))
feeds[step.x] = rng.normal(size=step.x.shape)
feeds[step.target] = np.eye(10)[rng.integers(0, 10, batch)]
feeds[step.lr] = 0.1
want = NumpyRunner(step.graph)(feeds)
outputs = step.graph.outputs
# the serial module, and the parallel one with every large kernel in chunks
runners = [compile_cpu(outputs, threads=1), compile_cpu(outputs, threads=2, parallel_min=64, guard=False)]
worst = 0.0
for runner in runners:
    for a, b in zip(want, runner(feeds)):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        worst = max(worst, float(np.max(np.abs(a - b) / (1e-12 + 1e-10 * np.abs(a)))))
stats = [runner.cache_stats() for runner in runners]
print(json.dumps({"parallel": runners[1].parallel, "worst": worst,
                  "hits": sum(s["hits"] for s in stats), "misses": sum(s["misses"] for s in stats)}))
"""


def _images(cache, *args) -> dict:
    env = {**os.environ, "GRADVIZ_CACHE": str(cache), "GRADVIZ_NAMED_IMAGES": "1"}
    done = subprocess.run([sys.executable, "-c", IMAGES, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_new_image_sizes_compile_nothing(tmp_path):
    """The cnn step compiled for 8x8 images serves 12x12 and 9x13 ones (odd sizes: pools floor)
    with no Numba compile, serial and parallel module alike, and computes what the interpreter
    does at every size (float64: within 1e-10 relative)."""
    first = _images(tmp_path, 8, 8, 6)
    assert first["misses"] > 0 and first["parallel"], first
    assert first["worst"] <= 1, first
    for h, w, batch in [(12, 12, 6), (9, 13, 5)]:
        run = _images(tmp_path, h, w, batch)
        assert run["misses"] == 0 and run["hits"] > 0, (h, w, batch, run)
        assert run["worst"] <= 1, (h, w, batch, run)


CUDA_IMAGES = r"""
import json
import numpy as np
import gradviz as gv
from gradviz.compiler.cuda.backend import compile_cuda
from gradviz.nn import layers as L
from gradviz.nn.optim import get_optimizer
from gradviz.nn.step import build_train_step, encode_targets
compiled, worst = [], 0.0
for h, w in [(8, 8), (10, 9)]:   # (flattened widths 4 and 6: one matmul tile regime)
    model = L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.Tanh(), L.MaxPool2d(2),
                         L.Conv2d(2, 1, 2), L.ReLU(), L.AvgPool2d(2, 1), L.Flatten(),
                         L.Linear((h // 2 - 2) * (w // 2 - 2), 3), input_shape=(1, h, w))
    step = build_train_step(model, 2, model.input_shape, optimizer=get_optimizer("momentum"))
    rng = np.random.default_rng(h)
    feeds = {step.x: rng.normal(size=step.x.shape).astype(np.float32),
             step.target: encode_targets(rng.integers(0, 3, 2), 3, "classification", "float32"),
             step.lr: np.float32(0.05)}
    feeds.update({p: np.asarray(v, np.float32) for p, v in model.init(rng).items()})
    feeds.update({s: np.array(step.initial_state[s.name], np.float32) for s in step.state})
    f = compile_cuda(step.graph.outputs)
    want = gv.evaluate(step.graph.outputs, feeds, order=step.graph.nodes)
    for node, got in zip(step.graph.outputs, f(feeds)):
        a, b = np.asarray(want[node], dtype=float), np.asarray(got, dtype=float)
        worst = max(worst, float(np.max(np.abs(a - b) / (2e-5 + 2e-4 * np.abs(a)))))
    compiled.append(f)
print(json.dumps({"sources": len({c.source for c in compiled}), "worst": worst,
                  "modules": len({id(c._module) for c in compiled}),
                  "named": "d_h" in compiled[0].source}))
"""


def test_cuda_module_serves_other_image_sizes(tmp_path):
    """The CUDA kernels of convolutions and pools take the image sizes as arguments too: a small
    CNN step at 8x8 and 10x9 is one module (imported once), right at both sizes (Numba's CUDA
    simulator, in a child process: it must be on before Numba is first imported)."""
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "GRADVIZ_CACHE": str(tmp_path), "NUMBA_ENABLE_CUDASIM": "1",
           "GRADVIZ_NAMED_IMAGES": "1"}
    done = subprocess.run([sys.executable, "-c", CUDA_IMAGES], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run == {**run, "sources": 1, "modules": 1, "named": True}, run
    assert run["worst"] <= 1, run


@pytest.mark.parametrize("h,w", [(9, 11), (12, 8)])
def test_unpadded_convolutions_at_named_sizes_compute_what_the_interpreter_does(h, w):
    """Convolutions without padding (every window in the image) take the runtime forms without
    range tests (`kernels._IM2COL_VALID`, `_COL2IM_VALID`), strided too: the step's values and
    gradients, serial and parallel module, within 1e-10 of the interpreter (float64)."""
    from gradviz.compiler.cpu.backend import compile_cpu
    from gradviz.nn import layers as L

    with named_images():
        model = L.Sequential(L.Conv2d(1, 2, 3, dtype="float64"), L.Tanh(),
                             L.Conv2d(2, 3, 3, stride=2, dtype="float64"), L.ReLU(),
                             L.Flatten(), L.Linear(3 * ((h - 5) // 2 + 1) * ((w - 5) // 2 + 1), 4,
                                                   dtype="float64"),
                             input_shape=(1, h, w))
        step = build_train_step(model, 3, model.input_shape, optimizer=SGD(), dtype="float64")
    outputs = step.graph.outputs
    rng = np.random.default_rng(h * w)
    feeds = {p: np.asarray(v) for p, v in model.init(rng).items()}
    feeds[step.x] = rng.normal(size=step.x.shape)
    feeds[step.target] = np.eye(4)[rng.integers(0, 4, 3)]
    feeds[step.lr] = 0.1
    want = gv.evaluate(outputs, feeds, order=step.graph.nodes)
    for runner in (compile_cpu(outputs, threads=1),
                   compile_cpu(outputs, threads=2, parallel_min=16, guard=False)):
        # named sizes, and no tap ranges (`jlo`): the forms for windows inside the image
        assert "d_h" in runner.source and "jlo" not in runner.source
        got = runner({k: np.array(v, copy=True) for k, v in feeds.items()})
        for node, value in zip(outputs, got):
            np.testing.assert_allclose(value, want[node], rtol=1e-10, atol=1e-12)


def test_the_last_partial_batch_splits_what_the_full_batch_split(tmp_path, monkeypatch):
    """Which kernels the parallel module splits depends on their sizes, so the last, smaller
    batch of an epoch would be another module to compile (the digits CNN at batch 32 and 10);
    the trainer compiles it `like` the full batch's step: the same text, one module."""
    from gradviz.compiler import source
    from gradviz.nn.training import TrainConfig, Trainer

    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    trainer = Trainer(TrainConfig(model="cnn", data="digits", epochs=1), device="cpu", threads=2)
    full, last = trainer._step_graph(32), trainer._step_graph(len(trainer.dataset.X_train) % 32)
    assert source(full, threads=2) != source(last, threads=2)   # their own choices differ
    trainer.run()
    (_, (_, big)), (_, (_, small)) = sorted(trainer._steps.items(), reverse=True)
    assert small.plan == big.plan and small.source == big.source
    assert len(list((tmp_path / "kernels").glob("*.py"))) == 1


def test_a_last_batch_that_would_split_a_weight_gradient_otherwise_is_the_same_code():
    """At batch 1024 the MLP's first weight gradient X^T @ dY is split along the batch (1024 >=
    4 x its 256 columns), and a last batch of 100 would split it by rows. The code holds both
    forms and makes that test at run time (kernels.splits_shared_axis), so the last batch
    compiled `like` the full one is the same text, and it computes the serial module's values."""
    from types import SimpleNamespace

    from gradviz.compiler import _outputs_and_updates, source
    from gradviz.compiler.bench import step_feeds
    from gradviz.compiler.cpu.backend import _parallel_units, compile_cpu

    net = build_model("mlp", None, 10)
    full, last = (build_train_step(net, b, net.input_shape, optimizer=SGD()) for b in (1024, 100))
    parallel = _parallel_units(cpu_schedule(*_outputs_and_updates(full, None)), 2, False)
    like = SimpleNamespace(plan=frozenset(i for i, split in parallel.items() if split))
    text = source(full, threads=2, like=like)
    assert "its chunks summed" in text and source(last, threads=2, like=like) == text
    outputs, updates = _outputs_and_updates(last, None)
    feeds = step_feeds(last, net)
    want = compile_cpu(outputs, updates, threads=1)({k: np.array(v) for k, v in feeds.items()})
    runner = compile_cpu(outputs, updates, threads=2, plan=like.plan, guard=False)
    assert runner.source == text
    for a, b in zip(want, runner({k: np.array(v) for k, v in feeds.items()})):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
