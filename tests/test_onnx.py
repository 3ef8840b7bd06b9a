"""ONNX export (run in ONNX Runtime) and import (built with onnx.helper; no PyTorch here)."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (gradviz[onnx])")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (gradviz[onnx])")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import gradviz as gv  # noqa: E402
from gradviz.cli import cli  # noqa: E402
from gradviz.core.interpret import evaluate  # noqa: E402
from gradviz.errors import GradvizError  # noqa: E402
from gradviz.interop.onnx_export import model_proto  # noqa: E402
from gradviz.interop.onnx_import import OnnxModel  # noqa: E402
from gradviz.nn.models import build_model  # noqa: E402


def _run_ort(proto, x, name="input"):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x})[0]


def _gradviz(model, values, x):
    node = gv.var("x", x.shape, str(x.dtype))
    out = model(node, train=False)
    return evaluate(out, {node: x, **values})[out]


@pytest.mark.parametrize("name,shape", [("mlp", (1, 8, 8)), ("cnn", (1, 8, 8)),
                                        ("lenet", (1, 28, 28))])
def test_export_runs_in_onnx_runtime_and_imports_back(name, shape):
    model = build_model(name, shape, 10)
    rng = np.random.default_rng(0)
    values = model.init(rng)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    want = _gradviz(model, values, x)
    proto = model_proto(model, {p.name: v for p, v in values.items()})
    np.testing.assert_allclose(_run_ort(proto, x), want, rtol=1e-4, atol=1e-5)
    back = OnnxModel(proto)
    assert [p.name for p in back.parameters()] == [p.name for p in model.parameters()]
    np.testing.assert_allclose(_gradviz(back, back.init(rng), x), want, rtol=1e-6, atol=1e-6)


def _graph(nodes, inits, in_shape, out_shape, opset=13, in_name="x", out_name="y"):
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def _compare(proto, x, rtol=1e-5):
    model = OnnxModel(proto)
    got = _gradviz(model, model.init(np.random.default_rng(0)), x)
    np.testing.assert_allclose(got, _run_ort(proto, x, model.input_name), rtol=rtol, atol=1e-5)
    return model


def test_every_supported_operator_against_onnx_runtime():
    rng = np.random.default_rng(1)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    inits = {"w": f32(3, 2, 3, 3), "b": f32(3), "scale": f32(3), "bias": f32(3),
             "mean": f32(3), "var": np.abs(f32(3)) + 0.5, "shape": np.array([0, -1]),
             "g": f32(12, 5), "gb": f32(5), "m": f32(5, 4), "c": f32(4)}
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1]),
        n("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-3),
        n("LeakyRelu", ["bn"], ["lr"], alpha=0.2),
        n("MaxPool", ["lr"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Elu", ["mp"], ["el"], alpha=0.5),
        n("AveragePool", ["el"], ["ap"], kernel_shape=[2, 2], strides=[1, 1]),
        n("GlobalAveragePool", ["ap"], ["gap"]),
        n("Identity", ["ap"], ["id"]),
        n("Dropout", ["id"], ["dr"]),
        n("Transpose", ["dr"], ["tr"], perm=[0, 1, 3, 2]),
        n("Reshape", ["tr", "shape"], ["rs"]),
        n("Gemm", ["rs", "g", "gb"], ["ge"], alpha=0.5, beta=2.0),
        n("Tanh", ["ge"], ["th"]),
        n("Flatten", ["gap"], ["fl"]),
        n("Concat", ["th", "fl"], ["cat"], axis=1),
        n("Constant", [], ["k"], value=numpy_helper.from_array(np.float32([2.0]))),
        n("Mul", ["cat", "k"], ["mu"]),
        n("Sub", ["mu", "k"], ["su"]),
        n("Div", ["su", "k"], ["dv"]),
        n("Sigmoid", ["dv"], ["sg"]),
        n("Relu", ["dv"], ["re"]),
        n("Add", ["sg", "re"], ["ad"]),
        n("Softmax", ["ad"], ["sm"], axis=1),
        n("LogSoftmax", ["sm"], ["ls"], axis=1),
    ]
    # a second branch exercises MatMul on the same input
    proto = _graph(nodes, inits, ["N", 2, 6, 6], ["N", 8], out_name="ls")
    _compare(proto, f32(3, 2, 6, 6))
    proto2 = _graph([n("Flatten", ["x"], ["f"]), n("MatMul", ["f", "m2"], ["mm"]),
                     n("Add", ["mm", "c2"], ["y"])],
                    {"m2": f32(12, 4), "c2": f32(4)}, ["N", 3, 4], ["N", 4])
    _compare(proto2, f32(2, 3, 4))


def test_opset_9_softmax_over_the_flattened_tail_and_shape_folding():
    rng = np.random.default_rng(2)
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["s"]),
             n("Gather", ["s", "zero"], ["n0"], axis=0),
             n("Unsqueeze", ["n0"], ["n1"], axes=[0]),
             n("Concat", ["n1", "minus1"], ["shp"], axis=0),
             n("Reshape", ["x", "shp"], ["r"]),
             n("Softmax", ["x"], ["sm"], axis=1),
             n("Reshape", ["sm", "shp"], ["r2"]),
             n("Add", ["r", "r2"], ["y"])]
    proto = _graph(nodes, {"zero": np.array(0), "minus1": np.array([-1])}, ["N", 2, 3],
                   ["N", 6], opset=9)
    _compare(proto, rng.normal(size=(2, 2, 3)).astype(np.float32))


def test_unsupported_operators_are_one_line_naming_each(tmp_path):
    n = helper.make_node
    proto = _graph([n("Erf", ["x"], ["a"]), n("Abs", ["a"], ["b"]), n("Erf", ["b"], ["y"])],
                   {}, ["N", 3], ["N", 3])
    path = tmp_path / "odd.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(GradvizError, match=r"unsupported ONNX operator\(s\): Abs, Erf \("):
        OnnxModel(str(path))
    result = CliRunner().invoke(cli, ["summary", "-m", str(path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "Abs, Erf" in result.output


def test_grouped_convolution_is_refused_when_built():
    proto = _graph([helper.make_node("Conv", ["x", "w"], ["y"], group=2)],
                   {"w": np.ones((2, 1, 1, 1), np.float32)}, ["N", 2, 3, 3], ["N", 2, 3, 3])
    with pytest.raises(GradvizError, match="ONNX node 0 Conv.*ungrouped"):
        OnnxModel(proto).output_shape((2, 3, 3))


def _lenet_file(tmp_path, softmax=False):
    model = build_model("lenet", (1, 28, 28), 10)
    values = model.init(np.random.default_rng(0))
    proto = model_proto(model, {p.name: v for p, v in values.items()})
    if softmax:
        last = proto.graph.node[-1].output[0]
        proto.graph.node[-1].output[0] = "logits"
        proto.graph.node.append(helper.make_node("Softmax", ["logits"], [last], axis=1))
    path = tmp_path / "lenet.onnx"
    onnx.save(proto, str(path))
    return str(path)


def test_summary_draw_and_gradcheck_of_an_imported_file(tmp_path):
    path = _lenet_file(tmp_path, softmax=True)
    runner = CliRunner()
    result = runner.invoke(cli, ["summary", "-m", path])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "61,706" in result.output and "Softmax" in result.output
    result = runner.invoke(cli, ["gradcheck", path])
    assert result.exit_code == 0, result.output
    assert "agree for all 10 parameter tensors" in result.output
    for args in (["-o", str(tmp_path / "f.svg")],
                 ["--random-input", "--collapse", "-o", str(tmp_path / "b.svg")]):
        result = runner.invoke(cli, ["draw", path, *args])
        assert result.exit_code == 0, result.output
    assert "loss" in (tmp_path / "b.svg").read_text()
    np.save(tmp_path / "x.npy", np.zeros((28, 28)))
    result = runner.invoke(cli, ["draw", path, "--input", str(tmp_path / "x.npy"), "--view",
                                 "gradients", "--collapse", "-o", str(tmp_path / "g.svg")])
    assert result.exit_code == 0, result.output


def test_gradcheck_names_the_node_whose_rule_is_wrong(tmp_path, monkeypatch):
    from gradviz.core import rules
    from gradviz.ops import neg

    proto = _graph([helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
                    helper.make_node("Tanh", ["h"], ["y"])],
                   {"w": np.ones((3, 2), np.float32) * 0.3, "b": np.zeros(2, np.float32)},
                   ["N", 3], ["N", 2])
    path = tmp_path / "t.onnx"
    onnx.save(proto, str(path))
    monkeypatch.setitem(rules.vjp_rules, "tanh", lambda node, g: (neg(g),))  # a wrong rule
    result = CliRunner().invoke(cli, ["gradcheck", str(path)])
    assert result.exit_code == 1, result.output
    assert "disagree for w, b" in result.output
    assert "the rule of node" in result.output and "tanh" in result.output


def test_train_evaluate_export_and_import_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["train", "-m", "cnn", "-d", "digits", "--hidden", "16", "--epochs", "1",
            "--device", "numpy", "--checkpoint", "run", "--json"]
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, ["export", "--checkpoint", "run", "-o", "cnn.onnx"])
    assert result.exit_code == 0, result.output
    assert "wrote cnn.onnx: cnn (epoch 1), input N x 1x8x8, 10 outputs, ONNX opset 17" \
        in result.output
    from sklearn.datasets import load_digits

    from gradviz.nn.training import TrainedModel

    raw = load_digits().data[:16].reshape(16, 1, 8, 8).astype(np.float32)
    want = TrainedModel("run").outputs(raw)
    proto = onnx.load("cnn.onnx")
    np.testing.assert_allclose(_run_ort(proto, raw), want, rtol=1e-4, atol=1e-4)
    back = OnnxModel("cnn.onnx")
    np.testing.assert_allclose(_gradviz(back, back.init(None), raw), want, rtol=1e-5,
                               atol=1e-5)
    # exported for normalized inputs (what training feeds), the file trains and evaluates like
    # a built-in model, starting from its own weights
    result = runner.invoke(cli, ["export", "--checkpoint", "run", "-o", "cnn.onnx",
                                 "--normalized-inputs"])
    assert result.exit_code == 0 and "takes inputs normalized as in training" in result.output
    result = runner.invoke(cli, ["train", "-m", "cnn.onnx", "-d", "digits", "--epochs", "1",
                                 "--device", "numpy", "--checkpoint", "run2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    # a model file is recorded by its absolute path (checkpoints reopen only what they recorded)
    assert summary["model"] == os.path.abspath("cnn.onnx") and summary["test_accuracy"] > 0.5
    result = runner.invoke(cli, ["evaluate", "--checkpoint", "run2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == summary["test_accuracy"]
    # a checkpoint of an imported model exports its own graph with the new weights
    result = runner.invoke(cli, ["export", "--checkpoint", "run2", "-o", "again.onnx"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["train", "-m", "cnn.onnx", "-d", "xor", "--epochs", "1"])
    assert result.exit_code == 2 and "takes inputs of 1x8x8, the data has 2" in result.output


def test_missing_onnx_package_is_one_line_naming_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    result = CliRunner().invoke(cli, ["summary", "-m", "model.onnx"])
    assert result.exit_code == 2
    assert "pip install 'gradviz[onnx]'" in result.output
