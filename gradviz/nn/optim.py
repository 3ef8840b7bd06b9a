"""Optimizers as update rules inside the training-step graph, and learning-rate schedules.

An optimizer does not run anything: given the parameter nodes, their gradient nodes and a
learning-rate node, `Optimizer.build` returns the nodes that compute the new parameters and the
new optimizer state. The state (moment estimates, running averages) enters the graph as `var`
leaves and leaves it as outputs, so one graph is one whole step and a compiler can take it as is.

State comes in two kinds: *slots*, one tensor per parameter with the parameter's shape (all start
at zero), and *counters*, scalars shared by every parameter (Adam's beta1**t and beta2**t, kept as
running products so no step count or `pow` is needed in the graph).

The learning rate is an input, so a schedule (`LRSchedule`) changes it between epochs without
rebuilding or recompiling anything.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.ir import Node
from gradviz.ops import abs_, add, div, maximum, mul, sqrt, sub, var


@dataclass(frozen=True)
class OptimizerUpdate:
    """What `Optimizer.build` returns: the state inputs, and the output nodes of one step.

    `state[i]` is a `var` leaf whose value at the next step is the value of `new_state[i]`;
    `initial[state[i].name]` is its value before the first step.
    """

    state: tuple[Node, ...]
    new_params: tuple[Node, ...]
    new_state: tuple[Node, ...]
    initial: dict[str, np.ndarray]


class Optimizer:
    """Base class. A subclass names its per-parameter `slots` and scalar `counters` (with their
    initial values) and writes `update`, which builds one parameter's step from nodes."""

    name: str = ""
    default_lr: float = 0.01
    slots: tuple[str, ...] = ()
    counters: dict[str, float] = {}

    def __init__(self, **hyper: float):
        unknown = set(hyper) - set(self.defaults())
        if unknown:
            raise GradvizError(f"{self.name} has no setting {sorted(unknown)[0]!r} "
                               f"(settings: {', '.join(self.defaults()) or 'none'})")
        self.hyper = {**self.defaults(), **{k: float(v) for k, v in hyper.items()}}
        for key, value in self.hyper.items():
            if key == "eps" and not (math.isfinite(value) and value > 0):
                raise GradvizError(f"{self.name}: eps must be a positive number, got {value}")
            if key != "eps" and not 0 <= value < 1:
                raise GradvizError(f"{self.name}: {key} must be in [0, 1), got {value}")

    @classmethod
    def defaults(cls) -> dict[str, float]:
        """Hyperparameters (other than the learning rate) and their default values."""
        return {}

    def config(self) -> dict:
        """A JSON-able description: `{"name": ..., **hyperparameters}`."""
        return {"name": self.name, **self.hyper}

    def advance(self, counters: dict[str, Node]) -> dict[str, Node]:
        """The counters after this step (same keys), from their values before it."""
        return {}

    def update(self, p: Node, g: Node, lr: Node, slots: dict[str, Node],
               counters: dict[str, Node]) -> tuple[Node, dict[str, Node]]:
        """One parameter's step: (new parameter, {slot: new slot value}). `counters` are the
        already advanced values (e.g. beta1**t for this step t)."""
        raise NotImplementedError

    def build(self, params: Sequence[Node], grads: Sequence[Node], lr: Node) -> OptimizerUpdate:
        """Update nodes for every parameter, given gradient nodes of the same shapes and a scalar
        learning-rate node."""
        if len(params) != len(grads):
            raise GradvizError("one gradient per parameter is needed")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise GradvizError("parameter names must be unique to name the optimizer state")
        dtype = params[0].dtype if params else "float64"
        state: list[Node] = []
        new_state: list[Node] = []
        initial: dict[str, np.ndarray] = {}
        counters = {k: var(f"{self.name}.{k}", (), dtype) for k in self.counters}
        advanced = self.advance(counters)
        for key, node in counters.items():
            state.append(node)
            new_state.append(advanced[key])
            initial[node.name] = np.asarray(self.counters[key], dtype=dtype)
        new_params = []
        for p, g in zip(params, grads):
            if g.shape != p.shape:
                raise GradvizError(f"gradient of {p.name!r} has shape {g.shape}, not {p.shape}")
            slots = {k: var(f"{p.name}.{k}", p.shape, p.dtype) for k in self.slots}
            new_p, new_slots = self.update(p, g, lr, slots, advanced)
            new_params.append(new_p)
            for key, node in slots.items():
                state.append(node)
                new_state.append(new_slots[key])
                initial[node.name] = np.zeros(p.shape, dtype=p.dtype)
        return OptimizerUpdate(tuple(state), tuple(new_params), tuple(new_state), initial)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({hyper})"


class SGD(Optimizer):
    """Plain gradient descent: p <- p - lr * g."""

    name = "sgd"
    default_lr = 0.1

    def update(self, p, g, lr, slots, counters):
        return sub(p, mul(lr, g)), {}


class Momentum(Optimizer):
    """Heavy-ball momentum (PyTorch's form): v <- momentum * v + g; p <- p - lr * v."""

    name = "momentum"
    default_lr = 0.05
    slots = ("velocity",)

    @classmethod
    def defaults(cls):
        return {"momentum": 0.9}

    def update(self, p, g, lr, slots, counters):
        v = add(mul(self.hyper["momentum"], slots["velocity"]), g)
        return sub(p, mul(lr, v)), {"velocity": v}


class RMSprop(Optimizer):
    """s <- rho * s + (1 - rho) * g**2; p <- p - lr * g / (sqrt(s) + eps)."""

    name = "rmsprop"
    default_lr = 0.001
    slots = ("sq_avg",)

    @classmethod
    def defaults(cls):
        return {"rho": 0.9, "eps": 1e-8}

    def update(self, p, g, lr, slots, counters):
        rho, eps = self.hyper["rho"], self.hyper["eps"]
        s = add(mul(rho, slots["sq_avg"]), mul(1.0 - rho, mul(g, g)))
        return sub(p, div(mul(lr, g), add(sqrt(s), eps))), {"sq_avg": s}


class Adam(Optimizer):
    """Adam (Kingma & Ba): first and second moment estimates with bias correction.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g**2;
    p <- p - lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps).
    """

    name = "adam"
    default_lr = 0.001
    slots = ("m", "v")
    counters = {"beta1_power": 1.0, "beta2_power": 1.0}

    @classmethod
    def defaults(cls):
        return {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def advance(self, counters):
        return {"beta1_power": mul(counters["beta1_power"], self.hyper["beta1"]),
                "beta2_power": mul(counters["beta2_power"], self.hyper["beta2"])}

    def update(self, p, g, lr, slots, counters):
        b1, b2, eps = self.hyper["beta1"], self.hyper["beta2"], self.hyper["eps"]
        m = add(mul(b1, slots["m"]), mul(1.0 - b1, g))
        v = add(mul(b2, slots["v"]), mul(1.0 - b2, mul(g, g)))
        m_hat = div(m, sub(1.0, counters["beta1_power"]))
        v_hat = div(v, sub(1.0, counters["beta2_power"]))
        return sub(p, div(mul(lr, m_hat), add(sqrt(v_hat), eps))), {"m": m, "v": v}


class AdaMax(Optimizer):
    """AdaMax (Adam with the infinity norm): m as in Adam; u <- max(b2 u, |g| + eps);
    p <- p - lr / (1 - b1**t) * m / u. (eps inside the max, as in PyTorch, keeps u > 0.)"""

    name = "adamax"
    default_lr = 0.002
    slots = ("m", "u")
    counters = {"beta1_power": 1.0}

    @classmethod
    def defaults(cls):
        return {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def advance(self, counters):
        return {"beta1_power": mul(counters["beta1_power"], self.hyper["beta1"])}

    def update(self, p, g, lr, slots, counters):
        b1, b2, eps = self.hyper["beta1"], self.hyper["beta2"], self.hyper["eps"]
        m = add(mul(b1, slots["m"]), mul(1.0 - b1, g))
        u = maximum(mul(b2, slots["u"]), add(abs_(g), eps))
        rate = div(lr, sub(1.0, counters["beta1_power"]))
        return sub(p, mul(rate, div(m, u))), {"m": m, "u": u}


class Adadelta(Optimizer):
    """Adadelta (Zeiler): step sizes from running averages of g**2 and of past steps dx**2.

    E[g2] <- rho E[g2] + (1-rho) g**2;  dx = -sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) * g;
    E[dx2] <- rho E[dx2] + (1-rho) dx**2;  p <- p + lr * dx  (lr 1.0 is the paper's method).
    """

    name = "adadelta"
    default_lr = 1.0
    slots = ("sq_avg", "delta_avg")

    @classmethod
    def defaults(cls):
        return {"rho": 0.9, "eps": 1e-6}

    def update(self, p, g, lr, slots, counters):
        rho, eps = self.hyper["rho"], self.hyper["eps"]
        sq = add(mul(rho, slots["sq_avg"]), mul(1.0 - rho, mul(g, g)))
        dx = mul(div(sqrt(add(slots["delta_avg"], eps)), sqrt(add(sq, eps))), g)  # -dx, in fact
        delta = add(mul(rho, slots["delta_avg"]), mul(1.0 - rho, mul(dx, dx)))
        return sub(p, mul(lr, dx)), {"sq_avg": sq, "delta_avg": delta}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, RMSprop, Adam, AdaMax, Adadelta)}


def get_optimizer(name: str, **hyper: float) -> Optimizer:
    """The optimizer called `name` (sgd, momentum, rmsprop, adam, adamax, adadelta)."""
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise GradvizError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
    return cls(**hyper)


def l2_term(params: Sequence[Node], strength: float) -> Node | None:
    """(strength / 2) * sum of squared weights, over parameters with 2 or more axes (biases are
    not decayed). Its gradient adds strength * w to each weight's gradient. None if no weight."""
    from gradviz.nn.losses import l2_penalty

    weights = [p for p in params if p.ndim >= 2]
    return l2_penalty(weights, 0.5 * strength) if weights else None


_STEP = re.compile(r"^step:(\d+):([0-9.eE+-]+)$")
_EXP = re.compile(r"^exp:([0-9.eE+-]+)$")


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate per epoch (0-based): constant, `step:EVERY:FACTOR` (times FACTOR every
    EVERY epochs) or `exp:FACTOR` (times FACTOR each epoch)."""

    base: float
    kind: str = "constant"
    every: int = 1
    factor: float = 1.0

    @classmethod
    def parse(cls, base: float, text: str | None) -> "LRSchedule":
        """Read a `--lr-decay` value (None or "none" for a constant rate)."""
        if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 0):
            raise GradvizError(f"learning rate must be a positive number, got {base!r}")
        if text is None or text.strip().lower() in ("", "none"):
            return cls(float(base))
        text = text.strip().lower()
        match = _STEP.match(text)
        if match:
            every, factor = int(match.group(1)), _factor(match.group(2), text)
            if every < 1:
                raise GradvizError(f"--lr-decay {text}: the step length must be >= 1 epoch")
            return cls(float(base), "step", every, factor)
        match = _EXP.match(text)
        if match:
            return cls(float(base), "exp", 1, _factor(match.group(1), text))
        raise GradvizError(f"--lr-decay must be 'step:EVERY:FACTOR' or 'exp:FACTOR', got {text!r}")

    def __call__(self, epoch: int) -> float:
        if self.kind == "step":
            return self.base * self.factor ** (epoch // self.every)
        if self.kind == "exp":
            return self.base * self.factor ** epoch
        return self.base

    def describe(self) -> str | None:
        """The `--lr-decay` text that gives this schedule (None for a constant rate)."""
        if self.kind == "step":
            return f"step:{self.every}:{self.factor!r}"
        if self.kind == "exp":
            return f"exp:{self.factor!r}"
        return None


def _factor(raw: str, text: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise GradvizError(f"--lr-decay {text}: {raw!r} is not a number") from None
    if not 0 < value <= 1:
        raise GradvizError(f"--lr-decay {text}: the factor must be in (0, 1], got {value:g}")
    return value
