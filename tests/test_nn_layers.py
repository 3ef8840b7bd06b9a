"""Layers, models, model files and `gradviz summary`: parameter counts from the slides, names,
initialisation, dropout inputs, an end-to-end gradient check and a model that learns XOR."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.errors import GradvizError, ShapeError
from gradviz.nn import (ELU, AvgPool2d, Conv2d, Dropout, Flatten, LeakyReLU, Linear, MaxPool2d,
                        Maxout, ReLU, Sequential, Sigmoid, Softmax, Step, Tanh, build_model,
                        cross_entropy, format_summary, model_from_spec, one_hot)
from gradviz.verify.finite_differences import agrees, numeric_grad

SLIDES_CONV20 = {"input_shape": [1, 28, 28],
                 "layers": [{"type": "conv2d", "channels": 20, "kernel": 5}]}
SLIDES_FC30 = {"input_shape": [1, 28, 28], "layers": ["flatten", {"type": "linear", "units": 30}]}
SLIDES_CNN = {"input_shape": [1, 28, 28],
              "layers": [{"type": "conv2d", "channels": 3, "kernel": 5}, "relu",
                         {"type": "maxpool2d", "kernel": 2}, "flatten",
                         {"type": "linear", "units": "classes"}]}


@pytest.mark.parametrize("size", [28, 32])
def test_lenet5_has_61706_parameters_and_the_slides_shapes(size):
    model = build_model("lenet", (1, size, size), 10)
    assert model.num_parameters() == 61_706
    rows = model.summary()
    shapes = {r.label: r.output_shape for r in rows if r.label}
    assert shapes == {"C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10),
                      "S4": (16, 5, 5), "F5 (C5)": (120,), "F6": (84,), "output": (10,)}
    params = {r.label: r.params for r in rows if r.label}
    assert params["F5 (C5)"] == 48_120 and params["F6"] == 10_164
    assert params["C1"] == 156 and params["C3"] == 2_416 and params["output"] == 850


@pytest.mark.parametrize("spec, total", [(SLIDES_CONV20, 520), (SLIDES_FC30, 23_550),
                                         (SLIDES_CNN, 4_408)])
def test_the_slides_parameter_counts(spec, total):
    assert model_from_spec(spec, n_classes=10).num_parameters() == total


def test_parameter_names_are_stable_dotted_paths():
    model = build_model("mlp", (4,), 3, hidden=(5,))
    assert [n for n, _ in model.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert [p.name for p in model.parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert all(p.op == "param" for p in model.parameters())
    nested = Sequential(Sequential(Linear(2, 3), Tanh()), Linear(3, 1))
    assert [n for n, _ in nested.named_parameters()] == ["0.0.weight", "0.0.bias", "1.weight",
                                                         "1.bias"]
    # the forward graph uses exactly these nodes
    out = nested(gv.var("x", (4, 2), "float32"), train=False)
    assert [n for n in gv.Graph(out).variables() if n.op == "param"] == nested.parameters()


def test_init_is_seeded_glorot_or_he_with_zero_biases():
    model = Sequential(Linear(400, 300), ReLU(), Linear(300, 200), Tanh(), Linear(200, 10))
    a = model.init(np.random.default_rng(7))
    b = model.init(np.random.default_rng(7))
    assert all(np.array_equal(a[p], b[p]) for p in model.parameters())
    w0, w1, w2 = (a[model[i].weight] for i in (0, 2, 4))
    assert w0.dtype == np.float32 and w0.shape == (400, 300)
    assert np.std(w0) == pytest.approx(np.sqrt(2 / 400), rel=0.05)          # He before ReLU
    assert np.abs(w1).max() <= np.sqrt(6 / 500) and \
        np.std(w1) == pytest.approx(np.sqrt(6 / 500) / np.sqrt(3), rel=0.05)  # Glorot before tanh
    assert np.abs(w2).max() <= np.sqrt(6 / 210)
    assert not np.any(a[model[0].bias])
    explicit = Sequential(Linear(400, 300, init="glorot"), ReLU())
    assert np.abs(explicit.init(np.random.default_rng(0))[explicit[0].weight]).max() <= \
        np.sqrt(6 / 700)


def test_conv_init_uses_receptive_field_fans():
    model = Sequential(Conv2d(3, 64, 5), ReLU())
    w = model.init(np.random.default_rng(0))[model[0].weight]
    assert np.std(w) == pytest.approx(np.sqrt(2 / 75), rel=0.05)


def test_dropout_reads_a_mask_input_only_when_training():
    model = Sequential(Linear(3, 8, dtype="float64"), ReLU(), Dropout(0.5),
                       Linear(8, 2, dtype="float64"))
    x = gv.var("x", (4, 3))
    train_out, eval_out = model(x, train=True), model(x, train=False)
    masks = [n for n in gv.Graph(train_out).variables() if n.name == "2.mask"]
    assert len(masks) == 1 and masks[0].shape == (4, 8)
    assert not [n for n in gv.Graph(eval_out).variables() if n.name == "2.mask"]
    m1 = model.random_inputs(np.random.default_rng(3), 4)
    m2 = model.random_inputs(np.random.default_rng(3), 4)
    assert list(m1) == masks and np.array_equal(m1[masks[0]], m2[masks[0]])
    assert set(np.unique(m1[masks[0]])) <= {0.0, 1.0}
    assert model.random_inputs(np.random.default_rng(3), 5) == {}
    # a step is reproducible: same parameters, same mask -> same loss
    env = {**model.init(np.random.default_rng(0)), **m1, x: np.ones((4, 3))}
    assert gv.value(gv.sum(train_out), env) == gv.value(gv.sum(train_out), env)


@pytest.mark.parametrize("layer, reference", [
    (Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (Tanh(), np.tanh),
    (ReLU(), lambda x: np.maximum(x, 0)),
    (LeakyReLU(), lambda x: np.maximum(0.1 * x, x)),
    (ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    (Softmax(), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (Maxout(2), lambda x: np.maximum(x[:, 0::2], x[:, 1::2])),
    (Step(), lambda x: (x > 0).astype(float)),
    (Flatten(), lambda x: x),
])
def test_parameterless_layers(layer, reference):
    x = np.array([[-2.0, -0.5, 0.5, 3.0], [1.0, -1.0, 0.25, -4.0]])
    got = gv.value(layer(gv.var("x", (2, 4)), train=True), x=x)
    np.testing.assert_allclose(got, reference(x), rtol=1e-12)
    assert layer.parameters() == [] and layer.init(np.random.default_rng(0)) == {}


def test_pooling_and_conv_layers_describe_themselves():
    assert Conv2d(1, 6, 5, padding=2).describe() == "Conv2d(1 -> 6, 5x5, pad 2)"
    assert Conv2d(3, 8, (3, 1), stride=2).describe() == "Conv2d(3 -> 8, 3x1, stride 2)"
    assert MaxPool2d(3, 1).describe() == "MaxPool2d(3x3, stride 1)"
    assert AvgPool2d(2).output_shape((6, 28, 28)) == (6, 14, 14)
    assert Linear(3, 2, bias=False).num_parameters() == 6


def test_a_small_conv_net_gradient_matches_finite_differences():
    model = Sequential(Conv2d(1, 2, 3, padding=1, dtype="float64"), Tanh(), MaxPool2d(2),
                       Flatten(), Linear(8, 3, dtype="float64"))
    x, t = gv.var("x", (2, 1, 4, 4)), gv.var("t", (2, 3))
    loss = cross_entropy(model(x, train=True), t)
    rng = np.random.default_rng(1)
    env = {**model.init(rng), x: rng.normal(size=(2, 1, 4, 4)), t: one_hot([0, 2], 3, "float64")}
    result = gv.backprop(loss, env)
    numeric = numeric_grad(loss, env, model.parameters())
    for p in model.parameters():
        assert agrees(result.grad(p), numeric[p], rtol=1e-6, atol=1e-8), p.name


def test_mlp_learns_xor_with_gradient_descent():
    model = build_model("mlp", (2,), 2, hidden=(8,), dtype="float64")
    x, t = gv.var("x", (4, 2)), gv.var("t", (4, 2))
    logits = model(x, train=True)
    loss = cross_entropy(logits, t)
    params = model.parameters()
    grads = gv.grad(loss, params)
    env = {**model.init(np.random.default_rng(0)),
           x: np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float), t: one_hot([0, 1, 1, 0], 2, float)}
    for _ in range(300):
        values = gv.evaluate([loss, *grads], env)
        for p, g in zip(params, grads):
            env[p] = env[p] - 0.5 * values[g]
    final = gv.evaluate([loss, logits], env)
    assert final[loss] < 0.05
    assert list(np.argmax(final[logits], 1)) == [0, 1, 1, 0]


def test_named_models_and_their_errors():
    assert build_model("perceptron", (2,), 2).output_shape((2,)) == (1,)
    assert build_model("logreg", (1, 8, 8), 10).num_parameters() == 650
    cnn = build_model("cnn", (1, 8, 8), 10)
    assert cnn.output_shape((1, 8, 8)) == (10,)
    assert build_model("mlp", (64,), 10, hidden="32,16").num_parameters() == \
        64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    with pytest.raises(GradvizError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(GradvizError, match="at least 28x28"):
        build_model("lenet", (1, 8, 8))
    with pytest.raises(GradvizError, match="--hidden applies"):
        build_model("lenet", hidden=(3,))
    with pytest.raises(GradvizError, match="positive"):
        build_model("mlp", (4,), 2, hidden=(0,))
    with pytest.raises(GradvizError, match="at least 2x2"):
        build_model("cnn", (1, 1, 1))


def test_layers_reject_mismatched_inputs_clearly():
    with pytest.raises(ShapeError, match="Flatten"):
        Linear(16, 2)(gv.var("x", (1, 1, 4, 4), "float32"), train=False)
    with pytest.raises(ShapeError, match="layer 1"):
        Sequential(Flatten(), Linear(10, 2))(gv.var("x", (1, 3, 3), "float32"), train=False)
    with pytest.raises(GradvizError, match="positive integer"):
        Linear(0, 3)


@pytest.mark.parametrize("spec, message", [
    ({"layers": [{"type": "dense", "units": 3}]}, "unknown type 'dense'"),
    ({"layers": [{"type": "linear"}]}, "needs units"),
    ({"layers": [{"type": "linear", "units": 3, "size": 2}]}, "does not take size"),
    ({"layers": [{"type": "linear", "units": 3}]}, "add a flatten"),
    ({"layers": []}, "non-empty list"),
    ({"layers": ["flatten"], "extra": 1}, "unknown key"),
    ({"input_shape": [1, 3, 3], "layers": [{"type": "conv2d", "channels": 2, "kernel": 5}]},
     "does not fit"),
    ({"layers": ["flatten", {"type": "linear", "units": -2}]}, "positive integer"),
])
def test_model_file_errors(spec, message):
    with pytest.raises(GradvizError, match=message):
        model_from_spec(spec)


def test_model_files_json_and_yaml(tmp_path):
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps(SLIDES_CNN))
    assert build_model(str(path), n_classes=10).num_parameters() == 4_408
    assert build_model(str(path), n_classes=5).output_shape((1, 28, 28)) == (5,)
    bad = tmp_path / "bad.json"
    bad.write_text("{layers: ")
    with pytest.raises(GradvizError, match="not valid JSON"):
        build_model(str(bad))
    with pytest.raises(GradvizError, match="cannot read"):
        build_model(str(tmp_path / "missing.json"))
    yaml = pytest.importorskip("yaml")
    ypath = tmp_path / "fc.yaml"
    ypath.write_text(yaml.safe_dump(SLIDES_FC30))
    assert build_model(str(ypath)).num_parameters() == 23_550


def test_yaml_model_files_without_pyyaml_say_so(tmp_path, monkeypatch):
    path = tmp_path / "m.yaml"
    path.write_text("layers: [flatten]")
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)
    with pytest.raises(GradvizError, match="needs PyYAML"):
        build_model(str(path))


def test_a_single_layer_summarizes_as_one_row():
    rows = Conv2d(1, 20, 5).summary((1, 28, 28))
    assert [(r.layer, r.output_shape, r.params) for r in rows] == \
        [("Conv2d(1 -> 20, 5x5)", (20, 24, 24), 520)]


def test_format_summary_table():
    model = model_from_spec(SLIDES_CNN, n_classes=10)
    text = format_summary(model.summary(), model.input_shape)
    lines = text.splitlines()
    assert "output shape" in lines[0] and "params" in lines[0]
    assert any("Conv2d(1 -> 3, 5x5)" in ln and "3x24x24" in ln and ln.endswith("78")
               for ln in lines)
    assert lines[-1].split()[-1] == "4,408"


def test_summary_command():
    runner = CliRunner()
    result = runner.invoke(cli, ["summary", "--model", "lenet"])
    assert result.exit_code == 0 and "61,706" in result.output and "C1" in result.output
    result = runner.invoke(cli, ["summary", "--model", "lenet", "--input-shape", "1,32,32",
                                 "--json"])
    report = json.loads(result.output)
    assert report["total_params"] == 61_706 and report["input_shape"] == [1, 32, 32]
    assert report["layers"][0]["output_shape"] == [6, 28, 28]
    result = runner.invoke(cli, ["summary", "--model", "mlp", "--input-shape", "64",
                                 "--hidden", "256,128"])
    assert result.exit_code == 0 and "Linear(64 -> 256)" in result.output


@pytest.mark.parametrize("args, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "lenet", "--input-shape", "1,8,8"], "at least 28x28"),
    (["--model", "lenet", "--input-shape", "a,b"], "--input-shape"),
    (["--model", "mlp", "--classes", "0"], "classes"),
    (["--model", "missing.json"], "cannot read model file"),
])
def test_summary_bad_input_is_exit_2_with_one_line(args, message):
    result = CliRunner().invoke(cli, ["summary", *args])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gradviz: error:") and message in lines[0]
