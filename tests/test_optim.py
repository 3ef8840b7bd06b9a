"""Optimizers as graphs: each update rule against a hand-written NumPy reference, schedules, L2."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.errors import GradvizError
from gradviz.core.ir import Graph
from gradviz.nn.optim import OPTIMIZERS, LRSchedule, get_optimizer, l2_term
from gradviz.nn.step import NumpyRunner

C = np.array([[0.5, 1.0, 2.0], [3.0, 0.25, 1.5]])


def _problem():
    """loss = sum(C * p**2) + sum(sin(q)); gradients 2 C p and cos(q)."""
    p, q = gv.param("p", (2, 3)), gv.param("q", (3,))
    loss = gv.sum(gv.const(C) * p * p) + gv.sum(gv.sin(q))
    return loss, [p, q], lambda pv, qv: [2 * C * pv, np.cos(qv)]


def _run_graph(opt, lr, steps, p0, q0):
    loss, params, _ = _problem()
    lr_node = gv.var("lr")
    update = opt.build(params, gv.grad(loss, params), lr_node)
    runner = NumpyRunner(Graph((*update.new_params, *update.new_state)))
    values = {params[0]: p0, params[1]: q0}
    state = {s: update.initial[s.name] for s in update.state}
    for _ in range(steps):
        out = runner({**values, **state, lr_node: lr})
        values = dict(zip(params, out[:2]))
        state = dict(zip(update.state, out[2:]))
    return [values[p] for p in params]


def _reference(name, hyper, lr, steps, p0, q0):
    _, _, gradient = _problem()
    ps = [p0.copy(), q0.copy()]
    slots = [dict() for _ in ps]
    for t in range(1, steps + 1):
        gs = gradient(*ps)
        for i, (p, g) in enumerate(zip(ps, gs)):
            s = slots[i]
            if name == "sgd":
                p = p - lr * g
            elif name == "momentum":
                s["v"] = hyper["momentum"] * s.get("v", 0) + g
                p = p - lr * s["v"]
            elif name == "rmsprop":
                s["s"] = hyper["rho"] * s.get("s", 0) + (1 - hyper["rho"]) * g**2
                p = p - lr * g / (np.sqrt(s["s"]) + hyper["eps"])
            elif name == "adam":
                b1, b2 = hyper["beta1"], hyper["beta2"]
                s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0) + (1 - b2) * g**2
                m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
                p = p - lr * m_hat / (np.sqrt(v_hat) + hyper["eps"])
            elif name == "adamax":
                b1, b2 = hyper["beta1"], hyper["beta2"]
                s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
                s["u"] = np.maximum(b2 * s.get("u", 0), np.abs(g) + hyper["eps"])
                p = p - lr / (1 - b1**t) * s["m"] / s["u"]
            elif name == "adadelta":
                rho, eps = hyper["rho"], hyper["eps"]
                s["g2"] = rho * s.get("g2", 0) + (1 - rho) * g**2
                dx = -np.sqrt(s.get("dx2", 0) + eps) / np.sqrt(s["g2"] + eps) * g
                s["dx2"] = rho * s.get("dx2", 0) + (1 - rho) * dx**2
                p = p + lr * dx
            ps[i] = p
    return ps


HYPER = {
    "sgd": {}, "momentum": {"momentum": 0.8}, "rmsprop": {"rho": 0.85, "eps": 1e-6},
    "adam": {"beta1": 0.8, "beta2": 0.95, "eps": 1e-7},
    "adamax": {"beta1": 0.85, "beta2": 0.9, "eps": 1e-7}, "adadelta": {"rho": 0.8, "eps": 1e-4},
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_update_matches_numpy_reference_for_three_steps(name):
    rng = np.random.default_rng(3)
    p0, q0 = rng.normal(size=(2, 3)), rng.normal(size=3)
    opt = get_optimizer(name, **HYPER[name])
    got = _run_graph(opt, 0.05, 3, p0, q0)
    want = _reference(name, opt.hyper, 0.05, 3, p0, q0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    assert not np.allclose(got[0], p0)  # the step moved the parameters


def test_sgd_reproduces_the_slides_gradient_descent_on_w_squared():
    w, lr = gv.param("w"), gv.var("lr")
    update = get_optimizer("sgd").build([w], [gv.grad(w * w, w)], lr)
    runner = NumpyRunner(Graph(update.new_params))
    trace = [1.0]
    for _ in range(3):
        trace.append(runner({w: trace[-1], lr: 0.1})[0])
    assert trace == pytest.approx([1.0, 0.8, 0.64, 0.512])


def test_state_is_named_after_parameters_and_starts_at_zero():
    p = gv.param("0.weight", (2, 2), "float32")
    update = get_optimizer("adam").build([p], [p * 2.0], gv.var("lr", (), "float32"))
    names = [s.name for s in update.state]
    assert names == ["adam.beta1_power", "adam.beta2_power", "0.weight.m", "0.weight.v"]
    assert update.initial["adam.beta1_power"] == 1.0
    assert update.initial["0.weight.m"].dtype == np.float32
    assert not update.initial["0.weight.v"].any()
    assert all(n.dtype == "float32" for n in update.new_params + update.new_state)


def test_l2_term_adds_strength_times_weight_to_weight_gradients_only():
    w, b = gv.param("w", (2, 2)), gv.param("b", (2,))
    term = l2_term([w, b], 0.3)
    wv = np.array([[1.0, -2.0], [0.5, 4.0]])
    assert gv.value(term, {"w": wv, "b": np.ones(2)}) == pytest.approx(0.15 * np.sum(wv**2))
    gw, gb = gv.grad(term, [w, b])
    np.testing.assert_allclose(gv.value(gw, {"w": wv}), 0.3 * wv)
    assert gb.op == "const"  # biases are not decayed
    assert l2_term([b], 0.3) is None


def test_lr_schedules():
    assert LRSchedule.parse(0.1, None)(7) == 0.1
    step = LRSchedule.parse(0.1, "step:2:0.5")
    assert [step(e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    exp = LRSchedule.parse(0.2, "exp:0.9")
    assert exp(3) == pytest.approx(0.2 * 0.9**3)
    assert LRSchedule.parse(0.2, exp.describe()) == exp


@pytest.mark.parametrize("text", ["step:0:0.5", "exp:1.5", "exp:0", "linear", "step:2"])
def test_bad_schedules_are_errors(text):
    with pytest.raises(GradvizError, match="lr-decay"):
        LRSchedule.parse(0.1, text)


def test_bad_optimizer_settings_are_errors():
    with pytest.raises(GradvizError, match="unknown optimizer 'adagrad'"):
        get_optimizer("adagrad")
    with pytest.raises(GradvizError, match="beta1 must be in"):
        get_optimizer("adam", beta1=1.0)
    with pytest.raises(GradvizError, match="no setting 'momentum'"):
        get_optimizer("sgd", momentum=0.9)
    with pytest.raises(GradvizError, match="positive"):
        LRSchedule.parse(0.0, None)
