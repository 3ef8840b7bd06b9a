"""Tests for gradviz.lectures.perceptron: the slides' worked examples, the gates, XOR's failure."""
import numpy as np
import pytest

from gradviz.data import load_dataset
from gradviz.errors import GradvizError
from gradviz.lectures.perceptron import (format_line, format_trace, hardlim, move_line, perceptron_update,
                                predict, train_perceptron)

# Hagan, Neural Network Design, ch. 4: the learning-rule test problem, no bias, w0 = [1, -0.8]
P = [[1, 2], [-1, 2], [0, -1]]
T = [1, 0, 0]


def test_hardlim_is_one_at_zero():
    assert hardlim(0.0) == 1 and hardlim(-1e-12) == 0 and hardlim(3) == 1
    np.testing.assert_array_equal(hardlim(np.array([-1.0, 0.0, 2.0])), [0, 1, 1])


def test_slides_learning_rule_example():
    r = train_perceptron(P, T, w0=[1.0, -0.8], lr=1.0, use_bias=False)
    history = r.weight_history
    assert len(history) == 4
    for got, want in zip(history, [[1.0, -0.8], [2.0, 1.2], [3.0, -0.8], [3.0, 0.2]]):
        np.testing.assert_allclose(got, want, atol=1e-12)
    # the first epoch, step by step as on the slides
    s1, s2, s3 = r.trace[:3]
    assert (s1.n, s1.a, s1.e) == pytest.approx((-0.6, 0, 1))
    assert (s2.n, s2.a, s2.e) == pytest.approx((0.4, 1, -1))
    assert (s3.n, s3.a, s3.e) == pytest.approx((0.8, 1, -1))
    np.testing.assert_allclose(s1.w_after, s1.w_before + s1.p)   # w1 = w0 + p1
    np.testing.assert_allclose(s2.w_after, s2.w_before - s2.p)   # w2 = w1 - p2
    np.testing.assert_allclose(s3.w_after, s3.w_before - s3.p)   # w3 = w2 - p3
    # the bias stays at 0 without a bias; the second epoch is clean
    assert all(s.b_before == 0 and s.b_after == 0 for s in r.trace)
    assert r.converged and r.epochs == 2 and r.errors_per_epoch == [3, 0]
    assert len(r.trace) == 6 and [s.epoch for s in r.trace] == [1, 1, 1, 2, 2, 2]
    assert [s.index for s in r.trace] == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(r.predict(P), T)
    text = format_trace(r)
    assert "converged after 2 epoch(s)" in text and "[2, 1.2]" in text


def test_with_a_bias_the_same_problem_also_converges():
    r = train_perceptron(P, T, w0=[1.0, -0.8], use_bias=True)
    assert r.converged
    assert r.trace[0].b_after == 1.0  # b1 = b0 + e
    np.testing.assert_array_equal(predict(r.w, r.b, P), T)


def test_slides_line_update():
    u = move_line((3, 4, -10), (4, 5), label=0, lr=0.1)
    assert u.misclassified and u.a == 1 and u.e == -1
    np.testing.assert_allclose(u.delta, [-0.4, -0.5, -0.1])
    np.testing.assert_allclose(u.after, [2.6, 3.5, -10.1])
    assert u.equation() == "2.6x1 + 3.5x2 - 10.1 = 0"
    assert format_line(u.before) == "3x1 + 4x2 - 10 = 0"
    # a point on the negative side labelled positive pulls the line the other way
    v = move_line((3, 4, -10), (1, 1), label=1, lr=0.1)
    np.testing.assert_allclose(v.after, [3.1, 4.1, -9.9])
    # a correctly classified point leaves the line where it is
    w = move_line((3, 4, -10), (4, 5), label=1, lr=0.1)
    assert not w.misclassified
    np.testing.assert_array_equal(w.after, [3, 4, -10])


def test_single_update_function():
    w, b, n, a, e = perceptron_update([3, 4], -10, [4, 5], 0, lr=0.1)
    np.testing.assert_allclose(w, [2.6, 3.5])
    assert b == pytest.approx(-10.1) and n == 22 and a == 1 and e == -1


@pytest.mark.parametrize("name", ["and", "or"])
def test_gates_are_learned(name):
    ds = load_dataset(name)
    r = train_perceptron(ds.X_train, ds.y_train, max_epochs=50)
    assert r.converged and r.errors_per_epoch[-1] == 0
    np.testing.assert_array_equal(r.predict(ds.X_test), ds.y_test)
    shuffled = train_perceptron(ds.X_train, ds.y_train, shuffle=True, seed=4, lr=0.5)
    assert shuffled.converged
    np.testing.assert_array_equal(shuffled.predict(ds.X_test), ds.y_test)


def test_xor_never_converges():
    ds = load_dataset("xor")
    r = train_perceptron(ds.X_train, ds.y_train, max_epochs=200)
    assert not r.converged and r.epochs == 200
    assert min(r.errors_per_epoch) > 0
    assert len(r.trace) == 200 * 4
    assert np.any(r.predict(ds.X_test) != ds.y_test)
    assert "did not converge in 200 epoch(s)" in format_trace(r)
    quiet = train_perceptron(ds.X_train, ds.y_train, max_epochs=10, record_trace=False)
    assert quiet.trace == [] and not quiet.converged


@pytest.mark.parametrize("kwargs,match", [
    (dict(X=[[1, 2]], t=[2]), "0 or 1"),
    (dict(X=[[1, 2]], t=[1, 0]), "1 input rows but 2 targets"),
    (dict(X=[1, 2], t=[1, 0]), "2-D"),
    (dict(X=[[1, 2]], t=[1], lr=0), "learning rate"),
    (dict(X=[[1, 2]], t=[1], max_epochs=0), "max_epochs"),
    (dict(X=[[1, 2]], t=[1], w0=[1, 2, 3]), "w0 has 3 weights"),
    (dict(X=[[1, np.nan]], t=[1]), "NaN"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(GradvizError, match=match):
        train_perceptron(kwargs.pop("X"), kwargs.pop("t"), **kwargs)


def test_bad_line_input():
    with pytest.raises(GradvizError, match="needs 3 coefficients"):
        move_line((3, 4), (4, 5), label=0)
    with pytest.raises(GradvizError, match="label must be 0 or 1"):
        move_line((3, 4, -10), (4, 5), label=-1)
    with pytest.raises(GradvizError, match="features but the perceptron has"):
        predict([1, 2], 0, [[1, 2, 3]])
