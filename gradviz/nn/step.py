"""The training step as one graph, the forward-only evaluation graph, and the device dispatch.

`build_train_step` puts forward pass, loss, backward pass and optimizer update into one `Graph`:

    inputs   x (batch, *input_shape), target, lr, parameters, optimizer state, dropout masks
    outputs  loss, correct count, new parameters, new optimizer state

and describes it with a `TrainStep` (which input and output is which). Nothing else is needed to
run a step, so the NumPy interpreter and the compilers take the same graph. The graph is built for
one batch size; the trainer builds a second one for the last, smaller batch of an epoch.

A *runner* executes a graph: `runner(feeds) -> list` takes `{input node: array}` and returns the
values of `graph.outputs`, in order. `make_runner(step, device)` picks one: `"numpy"` is the
reference interpreter; `"cpu"`/`"cuda"` come from `gradviz.compiler.compile(graph, device=...)`,
which returns a callable with the same contract. Output arrays belong to the caller (a compiled
runner given a `TrainStep` may write new parameters into the arrays fed in, and return those).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from gradviz.core.autodiff import grad
from gradviz.errors import GradvizError
from gradviz.core.interpret import evaluate
from gradviz.core.ir import Graph, Node
from gradviz.core.sizes import Size, image_sizes
from gradviz.nn.optim import Optimizer, l2_term
from gradviz.ops import add, mul, step, sub, sum as sum_, var

CLASSIFICATION, REGRESSION = "classification", "regression"
DEVICES = ("numpy", "cpu", "cuda", "auto")

Runner = Callable[[Mapping[Node, np.ndarray]], list]


@dataclass(frozen=True)
class TrainStep:
    """One training step as a graph, and which of its inputs and outputs is which.

    `graph.outputs` is `(loss, correct, *new_params, *new_state)` (`correct` is absent for
    regression). `new_params[i]` is the next value of `params[i]`, `new_state[i]` of `state[i]`.
    `initial_state` gives each state input's value before the first step, by name.
    """

    graph: Graph
    batch: int
    x: Node
    target: Node
    lr: Node
    params: tuple[Node, ...]
    state: tuple[Node, ...]
    masks: tuple[Node, ...]
    loss: Node
    correct: Node | None
    new_params: tuple[Node, ...]
    new_state: tuple[Node, ...]
    initial_state: dict[str, np.ndarray]

    @property
    def inputs(self) -> tuple[Node, ...]:
        """Every leaf the graph reads, in a fixed order: x, target, lr, params, state, masks."""
        return (self.x, self.target, self.lr, *self.params, *self.state, *self.masks)


@dataclass(frozen=True)
class EvalStep:
    """The forward pass for evaluation (no dropout, no update): outputs `(loss, correct,
    predictions)`, or `(loss, predictions)` for regression."""

    graph: Graph
    batch: int
    x: Node
    target: Node
    params: tuple[Node, ...]
    loss: Node
    correct: Node | None
    predictions: Node

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.x, self.target, *self.params)


def correct_count(logits: Node, targets: Node) -> Node:
    """How many rows of `logits` (batch, classes) have their largest entry at the class marked in
    the one-hot `targets`; for a single logit per row (binary), how many have logit > 0 exactly
    where the target is 1. Built from core ops (no argmax primitive): a row is wrong when some
    class scores strictly above the target's score, so ties count as correct."""
    batch = logits.shape[0]   # a named size stays one: generated code reads it (core/sizes.py)
    if logits.shape[1] == 1:
        positive = step(logits)
        wrong = add(mul(targets, sub(1.0, positive)), mul(sub(1.0, targets), positive))
        return sub(batch, sum_(wrong))
    target_score = sum_(mul(logits, targets), axis=1, keepdims=True)
    beaten_by = sum_(step(sub(logits, target_score)), axis=1)
    return sub(batch, sum_(step(beaten_by)))


def _default_loss(task: str) -> Callable[[Node, Node], Node]:
    from gradviz.nn import losses

    return losses.classification_loss if task == CLASSIFICATION else losses.mse


def _check_task(task: str) -> None:
    if task not in (CLASSIFICATION, REGRESSION):
        raise GradvizError(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}, got {task!r}")


def _forward(model, batch: int, input_shape: Sequence[int], dtype: str, train: bool, task: str,
             loss_fn):
    _check_task(task)
    batch = batch if isinstance(batch, Size) else Size.named("batch", batch)
    if len(input_shape) == 1:   # features
        input_shape = (Size.named("features", input_shape[0]),)
    elif len(input_shape) == 3:   # (channels, height, width): height and width are named too
        input_shape = (input_shape[0], *image_sizes(*input_shape[1:]))
    x = var("x", (batch, *input_shape), dtype)
    out = model(x, train=train)
    if out.ndim != 2 or out.shape[0] != batch:
        raise GradvizError(f"the model gives outputs of shape {out.shape}; "
                           f"a ({batch}, outputs) matrix is needed")
    target = var("target", out.shape, out.dtype)
    loss = (loss_fn or _default_loss(task))(out, target)
    if loss.shape != ():
        raise GradvizError(f"the loss must be a scalar, got shape {loss.shape}")
    correct = correct_count(out, target) if task == CLASSIFICATION else None
    return x, target, out, loss, correct


def build_train_step(model, batch: int, input_shape: Sequence[int], *,
                     optimizer: Optimizer, task: str = CLASSIFICATION, l2: float = 0.0,
                     dtype: str = "float32",
                     loss_fn: Callable[[Node, Node], Node] | None = None) -> TrainStep:
    """The whole training step of `model` for batches of `batch` examples.

    `model(x, train=True)` builds the forward graph and `model.parameters()` lists its `param`
    nodes. The target input is shaped like the model's output: one-hot rows (or a 0/1 column for a
    single-logit binary model, see `encode_targets`). The default loss is
    `losses.classification_loss` (MSE for regression), or `loss_fn(outputs, target)`.
    `l2 > 0` adds (l2/2)*sum(w**2) over the weights (parameters with 2+ axes) to the loss that
    is differentiated; the `loss` output stays the data loss, so it compares across runs with
    different `l2`.
    """
    if batch < 1:
        raise GradvizError(f"batch size must be >= 1, got {batch}")
    if not np.isfinite(l2) or l2 < 0:
        raise GradvizError(f"--l2 must be a number >= 0, got {l2}")
    x, target, _, loss, correct = _forward(model, batch, input_shape, dtype, True, task,
                                           loss_fn)
    params = tuple(model.parameters())
    if not params:
        raise GradvizError("the model has no parameters to train")
    objective = loss
    penalty = l2_term(params, l2) if l2 > 0 else None
    if penalty is not None:
        objective = add(loss, penalty)
    grads = grad(objective, list(params))
    lr = var("lr", (), params[0].dtype)
    update = optimizer.build(params, grads, lr)
    outputs = (loss, *(() if correct is None else (correct,)), *update.new_params,
               *update.new_state)
    graph = Graph(outputs)
    known = {x, target, lr, *params, *update.state}
    masks = tuple(n for n in graph.variables() if n not in known)
    return TrainStep(graph, batch, x, target, lr, params, update.state, masks, loss, correct,
                     update.new_params, update.new_state, update.initial)


def build_eval_step(model, batch: int, input_shape: Sequence[int], *,
                    task: str = CLASSIFICATION, dtype: str = "float32",
                    loss_fn: Callable[[Node, Node], Node] | None = None) -> EvalStep:
    """The forward pass of `model` in evaluation mode for batches of `batch` examples."""
    x, target, out, loss, correct = _forward(model, batch, input_shape, dtype, False, task,
                                             loss_fn)
    outputs = (loss, *(() if correct is None else (correct,)), out)
    graph = Graph(outputs)
    params = tuple(n for n in graph.variables() if n.op == "param")
    extra = [n for n in graph.variables() if n.op == "var" and n not in (x, target)]
    if extra:
        raise GradvizError(f"the evaluation graph needs inputs {', '.join(n.name for n in extra)}"
                           " (a model in eval mode must not need random masks)")
    return EvalStep(graph, batch, x, target, params, loss, correct, out)


def encode_targets(y: np.ndarray, n_outputs: int, task: str, dtype: str) -> np.ndarray:
    """Targets as the step graph takes them, for a model with `n_outputs` outputs: one-hot rows
    of class indices (a 0/1 column when `n_outputs` is 1), or (N, n_outputs) regression values."""
    if task == CLASSIFICATION:
        from gradviz.nn.losses import one_hot

        return one_hot(y, n_outputs, dtype=dtype)
    return np.asarray(y).reshape(len(y), n_outputs).astype(dtype)


# -- running graphs -----------------------------------------------------------------------------
class NumpyRunner:
    """Runs a graph with the NumPy reference interpreter (`--device numpy`)."""

    device = "numpy"

    def __init__(self, graph: Graph):
        self.graph = graph

    def __call__(self, feeds: Mapping[Node, np.ndarray]) -> list:
        values = evaluate(self.graph.outputs, feeds, order=self.graph.nodes)
        return [values[o] for o in self.graph.outputs]


def resolve_device(device: str) -> str:
    """The device a `--device` value names. `auto` is cuda when the compiler and a GPU are
    there, else the compiled CPU step when Numba is importable, else numpy. (The compiled step
    trains the digits MLP several times faster than the interpreter, see docs/benchmarks.md;
    its first compile takes seconds, later runs load it from the cache.)"""
    if device not in DEVICES:
        raise GradvizError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if device != "auto":
        return device
    try:
        from gradviz.compiler import DEVICES as compiled
    except ImportError:
        return "numpy"
    if "cuda" in compiled and _may_have_gpu():
        try:
            from numba import cuda

            if cuda.is_available():
                return "cuda"
        except Exception:  # noqa: BLE001 - any CUDA setup problem means "no GPU here"
            pass
    if "cpu" in compiled and importlib.util.find_spec("numba") is not None:
        return "cpu"
    return "numpy"


@dataclass(frozen=True)
class RunSize:
    """What `--device auto` weighs: the training steps of a run, the examples they see in all,
    the multiply-adds of one example's forward pass (weights times the positions they are used
    at), whether the compiled step is already in the kernel cache (None: cannot tell), and how
    many processes would compile it (the cores the run may use)."""

    steps: int
    samples: int
    macs_per_sample: int
    cached: bool | None = None
    processes: int = 1

    @property
    def work(self) -> float:
        """Multiply-adds of the whole run's forward passes."""
        return float(self.samples) * float(self.macs_per_sample)


# Rough costs behind `--device auto`, measured on the 2-core development machine (busy): the
# interpreter spends ~1 ms of Python per step and does ~7e8 forward multiply-adds a second
# (digits MLP, batch 32: 14,300 samples/s); the compiled step ~0.1 ms and ~5e9; loading a cached
# step takes ~1.5 s; compiling one ~1 s that is not shared and ~5 s that the processes compiling
# it share (compiler/cpu/compile_pool.py; an MLP step on 2 cores: 2-3.5 s, see
# docs/training.md, "Which device").
NUMPY_STEP_S, NUMPY_MACS_PER_S = 1e-3, 7e8
COMPILED_STEP_S, COMPILED_MACS_PER_S = 1e-4, 5e9
LOAD_S, COMPILE_ALONE_S, COMPILE_SHARED_S = 1.5, 1.0, 5.0


def estimate_seconds(size: RunSize, device: str) -> float:
    """A rough guess of the seconds a run takes on `device` (numpy, or a compiled one),
    compiling or loading the step included."""
    if device == "numpy":
        return size.steps * NUMPY_STEP_S + size.work / NUMPY_MACS_PER_S
    setup = LOAD_S if size.cached else \
        COMPILE_ALONE_S + COMPILE_SHARED_S / max(1, size.processes)
    return setup + size.steps * COMPILED_STEP_S + size.work / COMPILED_MACS_PER_S


def choose_device(device: str, size: RunSize | None = None) -> tuple[str, str]:
    """(device, why) for a `--device` value. A concrete device is taken as given. `auto` picks
    what should finish first: the interpreter when the run is so small that compiling cannot pay
    off, else the compiled step (cuda when there is a GPU, else cpu), which `size` (None:
    unknown) may say is cached already."""
    capable = resolve_device(device)
    if device != "auto":
        return capable, ""
    if capable == "numpy":
        return "numpy", "auto: no compiler here"
    if size is None:
        return capable, "auto"
    numpy_s = estimate_seconds(size, "numpy")
    compiled_s = estimate_seconds(size, capable)
    if numpy_s <= compiled_s:
        if size.cached:
            return "numpy", (f"auto: a short run, {_seconds(numpy_s)} on the interpreter; "
                             "quicker than loading the compiled step")
        return "numpy", (f"auto: a short run, {_seconds(numpy_s)} on the interpreter; "
                         "compiling would not pay off")
    if size.cached:
        return capable, "auto: the compiled step is in the cache"
    return capable, (f"auto: a long run, {_seconds(numpy_s)} on the interpreter; "
                     "compiling pays off")


def _seconds(value: float) -> str:
    if value < 1:
        return "under a second"
    if value < 120:
        return f"about {value:.0f} s"
    return f"about {value / 60:.0f} min"


def step_is_cached(step: "TrainStep", device: str, *, strict: bool = False,
                   threads: int | None = None, like=None) -> bool | None:
    """Whether the compiled code of `step` for `device` is in the kernel cache already (the CPU
    backend's content-addressed modules); None when that cannot be told (CUDA, no compiler).
    `strict`: first check that the cache can be used at all (its one-line GradvizError then
    comes before anything says "compiling"). `threads` and `like`: as for `make_runner` (the
    parallel and the serial modules are different code)."""
    if device != "cpu":
        return None
    try:
        from gradviz.compiler import cache, source
    except ImportError:
        return None
    is_compiled = getattr(cache, "is_compiled", None)
    if is_compiled is None:
        return None
    if strict:
        cache.kernels_dir()
    try:
        return bool(is_compiled(source(step, threads=threads, like=like)))
    except Exception:  # noqa: BLE001 - a graph the compiler refuses: make_runner says why
        return None


def _may_have_gpu() -> bool:
    """False when a GPU is surely absent (Linux without NVIDIA device files, no simulator), so
    that `auto` need not import Numba to find out."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not sys.platform.startswith("linux"):
        return True
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")


def make_runner(target: Graph | TrainStep, device: str, threads: int | None = None,
                like=None) -> Runner:
    """A runner for a graph (or a whole `TrainStep`, whose parameters and state a compiled
    runner may update in place) on a concrete device: numpy, cpu or cuda. The one place the
    trainer meets the compilers. `threads` (cpu): cores the compiled step may use (None: every
    core the process may use; see `gradviz.compiler.compile`); `like` (cpu): a runner of the
    same structure at other sizes, whose choice of split kernels this one takes (so that it is
    the same code: see `gradviz.compiler.compile`)."""
    graph = target.graph if isinstance(target, TrainStep) else target
    if device == "numpy":
        return NumpyRunner(graph)
    if device not in ("cpu", "cuda"):
        raise GradvizError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    try:
        from gradviz.compiler import compile as compile_graph
    except ImportError:
        raise GradvizError(f"--device {device} needs the Numba compiler (gradviz.compiler), "
                           "which this installation does not have; use --device numpy") from None
    if device == "cpu":
        return compile_graph(target, device=device, threads=threads, like=like)
    return compile_graph(target, device=device)


def first_nonfinite(graph: Graph, feeds: Mapping[Node, np.ndarray]) -> str | None:
    """The listing line of the first node (in topological order) whose value has a NaN or an
    infinity although its operands are finite: where a non-finite loss came from."""
    values = evaluate(graph.outputs, feeds, order=graph.nodes)
    bad: set[Node] = set()
    lines = str(graph).splitlines()
    for i, node in enumerate(graph.nodes):
        if np.all(np.isfinite(values[node])):
            continue
        if not any(s in bad for s in node.src):
            return " ".join(lines[i].split())
        bad.add(node)
    return None
