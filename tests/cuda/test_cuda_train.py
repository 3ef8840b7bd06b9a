"""Whole training steps on the CUDA backend (the simulator without a GPU) against the NumPy
interpreter: a tiny MLP with Adam, a tiny CNN (padding, tanh, average and max pooling) with
momentum, and `gradviz train --device cuda` learning XOR."""
import json

import numpy as np
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.nn import layers as L
from gradviz.nn.models import build_model
from gradviz.nn.optim import get_optimizer
from gradviz.nn.step import build_train_step, encode_targets
from gradviz.nn.training import TrainConfig, Trainer


def _feeds(step, model, rng):
    dtype = step.x.dtype
    classes = step.target.shape[1]
    feeds = {step.x: rng.normal(size=step.x.shape).astype(dtype),
             step.target: encode_targets(rng.integers(0, classes, step.batch), classes,
                                         "classification", dtype),
             step.lr: np.asarray(0.05, dtype)}
    feeds.update({p: np.asarray(v, dtype) for p, v in model.init(rng).items()})
    feeds.update({s: np.array(step.initial_state[s.name], dtype) for s in step.state})
    return feeds


def _two_steps_agree(model, batch, input_shape, optimizer):
    step = build_train_step(model, batch, input_shape, optimizer=get_optimizer(optimizer))
    feeds = _feeds(step, model, np.random.default_rng(0))
    f = gv.compile(step, device="cuda")
    on_gpu, on_cpu = dict(feeds), dict(feeds)
    updated = (*step.params, *step.state)
    first = len(step.graph.outputs) - len(updated)
    for _ in range(2):
        got = f(on_gpu)
        want = gv.evaluate(step.graph.outputs, on_cpu, order=step.graph.nodes)
        want = [want[o] for o in step.graph.outputs]
        for node, g, w in zip(step.graph.outputs, got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=2e-4, atol=2e-5,
                                       err_msg=str(node))
        for leaf, g, w in zip(updated, got[first:], want[first:]):
            assert not isinstance(g, np.ndarray)   # parameters stay on the device
            on_gpu[leaf], on_cpu[leaf] = g, w


def test_mlp_training_step_matches_the_interpreter():
    model = build_model("mlp", (5,), 3, hidden=(7,))
    _two_steps_agree(model, 4, (5,), "adam")


def test_cnn_training_step_matches_the_interpreter():
    model = L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.Tanh(), L.AvgPool2d(2),
                         L.Conv2d(2, 3, 3), L.ReLU(), L.MaxPool2d(2), L.Flatten(),
                         L.Linear(3, 3))
    _two_steps_agree(model, 2, (1, 8, 8), "momentum")


def test_the_cuda_trainer_follows_the_numpy_one_on_xor():
    config = TrainConfig(model="mlp", data="xor", hidden=(8,), epochs=8, batch=4,
                         optimizer="sgd", lr=0.5)
    # ("auto" would pick the interpreter for 8 steps: compiling does not pay off)
    gpu = Trainer(config, device="cuda").run()   # the simulator (or a GPU) counts as one
    ref = Trainer(config, device="numpy").run()
    assert gpu.device == "cuda"
    np.testing.assert_allclose([r.train_loss for r in gpu.history],
                               [r.train_loss for r in ref.history], rtol=1e-4)
    for name, value in ref.params.items():
        np.testing.assert_allclose(gpu.params[name], value, rtol=1e-4, atol=1e-5)


def test_gradviz_train_device_cuda_learns_xor():
    args = ["train", "--model", "mlp", "--hidden", "8", "--data", "xor", "--device", "cuda",
            "--epochs", "30", "--batch", "4", "--optimizer", "momentum", "--lr", "0.3", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["device"] == "cuda"
    assert summary["test_accuracy"] == 1.0 and summary["train_loss"] < 0.1


def test_a_resumed_cuda_run_ends_bit_exact(tmp_path):
    common = dict(model="mlp", data="xor", hidden=(8,), batch=4, optimizer="adam", lr=0.05)
    Trainer(TrainConfig(epochs=2, **common), device="cuda", checkpoint=tmp_path).run()
    resumed = Trainer(TrainConfig(epochs=3, **common), device="cuda", checkpoint=tmp_path,
                      resume=True).run()
    straight = Trainer(TrainConfig(epochs=3, **common), device="cuda").run()
    assert resumed.resumed_from_epoch == 2
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)


def test_one_module_serves_other_widths_and_batches():
    """Kernels keyed by structure: the MLP step at other hidden widths and batch sizes (within
    the launch geometry's regime) is the same generated module, and computes each size right."""
    from gradviz.compiler.cuda.backend import compile_cuda

    compiled = []
    for hidden, batch in [(6, 4), (8, 4), (8, 3)]:   # one matmul tile regime on the simulator
        model = build_model("mlp", (5,), 3, hidden=(hidden,))
        _two_steps_agree(model, batch, (5,), "adam")
        step = build_train_step(model, batch, (5,), optimizer=get_optimizer("adam"))
        updates = dict(zip((*step.params, *step.state), (*step.new_params, *step.new_state)))
        compiled.append(compile_cuda(step.graph.outputs, updates))
    assert len({c.source for c in compiled}) == 1
    assert len({id(c._module) for c in compiled}) == 1   # imported (and compiled) once
