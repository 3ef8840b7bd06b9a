"""Training-step throughput: one model's whole step (forward, loss, backward, SGD update) timed
on a device with random data. Used by `gradviz bench` and `benchmarks/train.py`."""
from __future__ import annotations

import statistics
import time

import numpy as np

from gradviz.errors import GradvizError


def step_feeds(step, model, seed: int = 0) -> dict:
    """Random inputs, one-hot targets, initial parameters and optimizer state for `step`."""
    from gradviz.nn.step import encode_targets

    rng = np.random.default_rng(seed)
    dtype = step.x.dtype
    n_classes = step.target.shape[1]
    feeds = {step.x: rng.normal(size=step.x.shape).astype(dtype),
             step.target: encode_targets(rng.integers(0, n_classes, step.batch), n_classes,
                                         "classification", dtype),
             step.lr: np.asarray(0.01, dtype)}
    feeds.update({p: np.asarray(v, dtype) for p, v in model.init(rng).items()})
    feeds.update({s: np.array(step.initial_state[s.name]) for s in step.state})
    for m in step.masks:
        feeds[m] = (rng.uniform(size=m.shape) > 0.5).astype(dtype)
    return feeds


def measure(model: str, batch: int, steps: int, device: str, *, input_shape=None,
            n_classes: int = 10, threads: int | None = None, repeats: int = 5) -> dict:
    """Median time of one training step of `model` at `batch` on `device` (numpy, cpu, cuda),
    over `repeats` runs of `steps` steps each (after one warm-up step). `threads` (cpu): cores
    the step may use, None for all. Returns the `bench --json` object: model, device, batch,
    samples_per_sec, step_ms, compile_s."""
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import SGD
    from gradviz.nn.step import build_train_step, make_runner

    if batch < 1 or steps < 1 or repeats < 1:
        raise GradvizError("--batch, --steps and repeats must be at least 1")
    if device not in ("numpy", "cpu", "cuda"):
        raise GradvizError(f"bench runs on numpy, cpu or cuda, not {device!r}")
    net = build_model(model, input_shape, n_classes)
    shape = net.input_shape or tuple(input_shape or (1, 28, 28))
    step = build_train_step(net, batch, shape, optimizer=SGD())
    started = time.perf_counter()
    if device == "cpu":
        from gradviz.compiler import compile as compile_graph

        runner = compile_graph(step, threads=threads)
    elif device == "cuda":
        from gradviz.compiler import compile as compile_graph

        runner = compile_graph(step, device="cuda")
    else:
        runner = make_runner(step, "numpy")
    compile_s = time.perf_counter() - started
    feeds = step_feeds(step, net)
    runner(feeds)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = runner(feeds)
            if device != "cpu":   # new parameters are returned (on the GPU: as device arrays)
                first = len(out) - len(step.new_params) - len(step.new_state)
                feeds.update(zip(step.params, out[first:]))
        times.append((time.perf_counter() - start) / steps)
    step_s = statistics.median(times)
    return {"model": model, "device": device, "batch": batch,
            "samples_per_sec": batch / step_s, "step_ms": step_s * 1e3,
            "compile_s": compile_s}
