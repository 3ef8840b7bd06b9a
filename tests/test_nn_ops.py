"""Network ops beyond the spec table: second order, stability, ties, the slides' numbers, losses,
dropout masks and clear shape errors."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.errors import GradvizError, ShapeError
from gradviz.nn import losses
from gradviz.verify.finite_differences import agrees, numeric_grad
from gradviz.ops import conv as nn
from gradviz.core.rules import kinks


def _check_second_order(build, shapes, seed=0):
    """d/dv <grad f, c> by backprop (a gradient of a gradient graph) vs finite differences."""
    rng = np.random.default_rng(seed)
    nodes = [gv.var(f"v{i}", s) for i, s in enumerate(shapes)]
    f = build(*nodes)
    first = gv.grad(f, nodes)
    h = None
    for g in first:
        term = gv.sum(g * gv.const(rng.normal(size=g.shape)))
        h = term if h is None else h + term
    env = {n: rng.normal(size=n.shape) for n in nodes}
    result = gv.backprop(h, env)
    numeric = numeric_grad(h, env, nodes)
    for n in nodes:
        assert agrees(result.grad(n), numeric[n], rtol=1e-6, atol=1e-7), n.name


def test_second_order_through_convolution():
    _check_second_order(lambda x, w: gv.sum(gv.tanh(nn.conv2d(x, w, 2, 1))),
                        [(2, 2, 5, 5), (3, 2, 3, 3)])


@pytest.mark.parametrize("build, shapes", [
    (lambda x, w: nn.conv2d(x, w, 2), [(1, 2, 6, 7), (2, 2, 3, 3)]),       # last row/col unused
    (lambda x, w: nn.conv2d(x, w, (1, 3), (2, 0)), [(2, 1, 3, 7), (2, 1, 2, 2)]),
    (lambda x: nn.max_pool2d(x, 2), [(1, 2, 5, 5)]),
    (lambda x: nn.avg_pool2d(x, (2, 3), (1, 2)), [(1, 1, 4, 6)]),
])
def test_windows_that_leave_input_uncovered(build, shapes):
    rng = np.random.default_rng(5)
    nodes = [gv.var(f"v{i}", s) for i, s in enumerate(shapes)]
    out = build(*nodes)
    loss = gv.sum(out * gv.const(rng.normal(size=out.shape)))
    env = {n: rng.normal(size=n.shape) for n in nodes}
    result, numeric = gv.backprop(loss, env), numeric_grad(loss, env, nodes)
    for n in nodes:
        assert agrees(result.grad(n), numeric[n]), n.name


def test_third_order_stays_inside_the_three_conv_ops():
    x, w = gv.var("x", (1, 1, 4, 4)), gv.var("w", (1, 1, 2, 2))
    g = gv.grad(gv.sum(nn.conv2d(x, w) ** 3), w)
    gg = gv.grad(gv.sum(g * g), x)
    ggg = gv.grad(gv.sum(gg * gg), w)
    ops = {n.op for n in gv.Graph(ggg)}
    assert {"conv2d", "conv2d_transpose", "conv2d_weight_grad"} <= ops


def test_second_order_through_pooling():
    _check_second_order(lambda x: gv.sum(gv.tanh(nn.max_pool2d(x, 2)) * gv.tanh(nn.avg_pool2d(x, 2))),
                        [(2, 2, 4, 4)])
    _check_second_order(lambda x: gv.sum(gv.sin(nn.max_pool2d(x, 3, 1))), [(1, 2, 5, 5)])


def test_second_order_through_log_softmax_and_softplus():
    _check_second_order(lambda x: gv.sum(gv.log_softmax(x) * gv.const(np.arange(10.).reshape(2, 5))),
                        [(2, 5)])
    _check_second_order(lambda x: gv.sum(gv.softplus(x) * x), [(3,)])


def test_slides_cross_entropy_is_0_479():
    # label B of A, B, C; the model predicts (0.228, 0.619, 0.153)
    q = np.array([0.228, 0.619, 0.153])
    logits = gv.var("z", (3,))
    target = gv.const(np.array([0.0, 1.0, 0.0]))
    loss = losses.cross_entropy(logits, target)
    assert 0.479 <= gv.value(loss, z=np.log(q)) < 0.480  # the slides truncate 0.47965
    assert gv.value(loss, z=np.log(q)) == pytest.approx(-np.log(0.619), rel=1e-12)
    # its gradient wrt the logits is softmax - target
    r = gv.backprop(loss, z=np.log(q))
    np.testing.assert_allclose(r.grad(logits), q - [0, 1, 0], atol=1e-12)


def test_cross_entropy_batch_mean_and_one_hot_labels():
    z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    t = losses.one_hot([0, 2], 3, dtype="float64")
    logits, target = gv.var("z", (2, 3)), gv.var("t", (2, 3))
    got = gv.value(losses.cross_entropy(logits, target), z=z, t=t)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert got == pytest.approx(-(np.log(p[0, 0]) + np.log(p[1, 2])) / 2, rel=1e-12)


def test_softmax_and_log_softmax_do_not_overflow():
    z = gv.var("z", (2, 3))
    big = np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -801.0]])
    p = gv.value(gv.softmax(z), z=big)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    logp = gv.value(gv.log_softmax(z), z=big)
    np.testing.assert_allclose(logp[0], [0.0, -1000.0, -2000.0])
    t = gv.const(np.eye(3)[[2, 2]])
    r = gv.backprop(losses.cross_entropy(z, t), z=big)
    assert np.isfinite(r.value) and np.all(np.isfinite(r.grad(z)))


def test_float32_losses_stay_float32_and_finite():
    z, t = gv.var("z", (2, 3), "float32"), gv.var("t", (2, 3), "float32")
    loss = losses.cross_entropy(z, t)
    r = gv.backprop(loss, z=np.array([[90.0, 0, -90], [0, 0, 0]], np.float32),
                    t=np.eye(3, dtype=np.float32)[[2, 0]])
    assert loss.dtype == "float32" and np.isfinite(r.value)
    assert r.grad(z).dtype == np.float32


def test_amax_splits_the_gradient_among_ties():
    x = gv.var("x", (2, 3))
    m = gv.amax(x, 1)
    r = gv.backprop(gv.sum(m), x=np.array([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]]))
    np.testing.assert_allclose(r.grad(x), [[0, 0.5, 0.5], [0, 0, 1]])
    assert kinks["amax"](m, np.array([[1.0, 3.0, 3.0], [0.0, 1.0, 2.0]]))
    assert not kinks["amax"](m, np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]]))


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = gv.var("x", (1, 1, 2, 4))
    value = np.array([[[[1.0, 5.0, 7.0, 7.0], [5.0, 2.0, 0.0, 1.0]]]])
    r = gv.backprop(gv.sum(nn.max_pool2d(x, 2)), x=value)
    np.testing.assert_allclose(r.grad(x), [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])
    assert kinks["max_pool2d"](nn.max_pool2d(x, 2), value)


def test_overlapping_max_windows_add_up_at_a_shared_maximum():
    x = gv.var("x", (1, 1, 3, 3))
    value = np.zeros((1, 1, 3, 3))
    value[0, 0, 1, 1] = 9.0  # the maximum of all four 2x2 windows
    r = gv.backprop(gv.sum(nn.max_pool2d(x, 2, 1)), x=value)
    assert r.grad(x)[0, 0, 1, 1] == 4.0 and r.grad(x).sum() == 4.0


def test_convolution_with_a_known_kernel():
    # a 2x2 box filter with stride 2 is 4x a 2x2 average pool; padding adds zeros
    x = gv.var("x", (1, 1, 4, 4))
    image = np.arange(16.0).reshape(1, 1, 4, 4)
    box = gv.const(np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(gv.value(nn.conv2d(x, box, 2), x=image),
                               4 * gv.value(nn.avg_pool2d(x, 2), x=image))
    padded = gv.value(nn.conv2d(x, box, 1, 1), x=image)
    assert padded.shape == (1, 1, 5, 5) and padded[0, 0, 0, 0] == 0.0  # only the zero pad
    assert padded[0, 0, 4, 4] == 15.0


def test_binary_cross_entropy_gradient_at_a_zero_logit():
    # a zero-initialised model outputs logit 0: d/dz = sigmoid(0) - t, exactly
    z, t = gv.var("z", (2, 1)), gv.var("t", (2, 1))
    r = gv.backprop(losses.binary_cross_entropy(z, t), z=np.zeros((2, 1)), t=[[1.0], [0.0]])
    assert r.value == pytest.approx(np.log(2))
    np.testing.assert_allclose(r.grad(z), [[-0.25], [0.25]])
    big = gv.backprop(losses.binary_cross_entropy(z, t), z=[[800.0], [-800.0]], t=[[0.0], [1.0]])
    assert big.value == pytest.approx(800.0)
    np.testing.assert_allclose(big.grad(z), [[0.5], [-0.5]])


def test_mse_rmse_and_the_slides_l2_penalty():
    y, t = gv.var("y", (4,)), gv.var("t", (4,))
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 3.0, 0.0])
    assert gv.value(losses.mse(y, t), y=a, t=b) == pytest.approx(5.0)
    assert gv.value(losses.rmse(y, t), y=a, t=b) == pytest.approx(np.sqrt(5.0))
    # loss_reg = (y - (b + w x))^2 + lambda (b^2 + w^2)
    w, bias, x, target = gv.vars("w b x y")
    loss = (target - (bias + w * x)) ** 2 + losses.l2_penalty([bias, w], 0.1)
    r = gv.backprop(loss, w=2.0, b=1.0, x=3.0, y=10.0)
    assert r.value == pytest.approx(9.0 + 0.1 * 5.0)
    assert r.grad(w) == pytest.approx(-2 * 3.0 * 3.0 + 0.2 * 2.0)


def test_maxout_is_the_slides_max_of_two_affine_maps():
    x = gv.var("x", (2, 3))
    w = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    b = np.array([0.1, -0.2])
    out = gv.maxout(x @ gv.const(w) + gv.const(b), 2)
    xv = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    np.testing.assert_allclose(gv.value(out, x=xv), np.maximum(xv @ w[:, 0] + b[0],
                                                               xv @ w[:, 1] + b[1])[:, None])


def test_dropout_mask_is_an_input_and_scales_kept_units():
    x, mask = gv.var("x", (2, 4)), gv.var("mask", (2, 4))
    out = gv.dropout(x, mask, 0.5)
    assert mask in gv.Graph(out).variables()
    m = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], float)
    np.testing.assert_allclose(gv.value(out, x=np.ones((2, 4)), mask=m), 2 * m)
    assert gv.dropout(x, mask, 0.0) is x
    with pytest.raises(GradvizError, match="rate"):
        gv.dropout(x, mask, 1.0)
    with pytest.raises(ShapeError, match="mask"):
        gv.dropout(x, gv.var("m", (4,)), 0.5)


@pytest.mark.parametrize("build, message", [
    (lambda: nn.conv2d(gv.var("x", (1, 3, 8, 8)), gv.var("w", (4, 2, 3, 3))), "3 channels"),
    (lambda: nn.conv2d(gv.var("x", (1, 1, 4, 4)), gv.var("w", (1, 1, 5, 5))), "does not fit"),
    (lambda: nn.conv2d(gv.var("x", (1, 4, 4)), gv.var("w", (1, 1, 3, 3))), "4-D"),
    (lambda: nn.max_pool2d(gv.var("x", (1, 1, 1, 4)), 2), "does not fit"),
    (lambda: gv.maxout(gv.var("x", (2, 5)), 2), "groups of 2"),
    (lambda: losses.cross_entropy(gv.var("z", (2, 3)), gv.var("t", (2, 4))), "differ in shape"),
])
def test_shape_errors_name_the_problem(build, message):
    with pytest.raises(ShapeError, match=message):
        build()


def test_bad_attributes_are_gradviz_errors():
    with pytest.raises(GradvizError, match="stride"):
        nn.conv2d(gv.var("x", (1, 1, 4, 4)), gv.var("w", (1, 1, 2, 2)), stride="two")
    with pytest.raises(GradvizError, match="positive"):
        nn.max_pool2d(gv.var("x", (1, 1, 4, 4)), 0)


def test_one_hot_and_predicted_classes():
    np.testing.assert_array_equal(losses.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert losses.one_hot([1, 0], 1).shape == (2, 1)
    with pytest.raises(GradvizError, match="0..2"):
        losses.one_hot([3], 3)
    np.testing.assert_array_equal(losses.predicted_classes([[0.1, 2.0], [3.0, 1.0]]), [1, 0])
    np.testing.assert_array_equal(losses.predicted_classes([[0.3], [-2.0]]), [1, 0])


def test_log_softmax_loss_with_a_total_compiles():
    # one fused kernel holds amax over the innermost axis (summed in a local, stored after the
    # inner loop) and a total sum: the total's step once landed after that store, mis-indented
    x, w = gv.var("x", (4, 3)), gv.param("w", (3, 5))
    h = gv.tanh(x @ w)
    loss = gv.mean(gv.log_softmax(h, 1)) + gv.sum(gv.softplus(h))
    outputs = [loss, *gv.grad(loss, [w])]
    rng = np.random.default_rng(0)
    env = {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 5))}
    want = gv.evaluate(outputs, env)
    for node, got in zip(outputs, gv.compile(outputs)(env)):
        np.testing.assert_allclose(got, want[node], rtol=1e-10)
