"""The training step graph, the training loop, checkpoints and resume, `gradviz train/evaluate`."""
import json
import os
import sys

import numpy as np
import pytest

import gradviz as gv
from gradviz.nn import checkpoints as ckpt
from gradviz.errors import GradvizError
from gradviz.data import load_dataset
from gradviz.nn.optim import get_optimizer
from gradviz.nn.step import (NumpyRunner, build_eval_step, build_train_step, correct_count,
                             first_nonfinite, make_runner, resolve_device)
from gradviz.verify.finite_differences import numeric_grad
from gradviz.nn.training import NonFiniteLoss, TrainConfig, Trainer


class TinyMLP:
    """One tanh hidden layer made of core ops, with the Module interface the trainer uses."""

    def __init__(self, n_in, hidden, n_out, dtype="float64"):
        self.w1 = gv.param("0.weight", (n_in, hidden), dtype)
        self.b1 = gv.param("0.bias", (hidden,), dtype)
        self.w2 = gv.param("1.weight", (hidden, n_out), dtype)
        self.b2 = gv.param("1.bias", (n_out,), dtype)

    def __call__(self, x, *, train):
        return gv.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def parameters(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def init(self, rng):
        return {p: (rng.normal(size=p.shape) / np.sqrt(p.shape[0]) if p.ndim == 2
                    else np.zeros(p.shape)).astype(p.dtype) for p in self.parameters()}

    def random_inputs(self, rng, batch):
        return {}


class DropoutMLP(TinyMLP):
    """TinyMLP with inverted dropout on the hidden layer; its mask (one per batch size) is a
    random input."""

    def __call__(self, x, *, train):
        h = gv.tanh(x @ self.w1 + self.b1)
        if train:
            if not hasattr(self, "masks"):
                self.masks = {}
            mask = self.masks.setdefault(h.shape, gv.var("0.mask", h.shape, h.dtype))
            h = h * mask * 2.0
        return h @ self.w2 + self.b2

    def random_inputs(self, rng, batch):
        return {m: (rng.random(m.shape) < 0.5).astype(m.dtype)
                for shape, m in self.masks.items() if shape[0] == batch}


def _digits(**kw):
    return load_dataset("digits", seed=0, **kw)


# -- the step graph -----------------------------------------------------------------------------
def test_step_graph_gradients_match_finite_differences_l2_included():
    rng = np.random.default_rng(0)
    model = TinyMLP(3, 4, 3)
    l2 = 0.3
    step = build_train_step(model, 5, (3,), optimizer=get_optimizer("sgd"), l2=l2,
                            dtype="float64")
    assert step.x.shape == (5, 3) and step.target.shape == (5, 3)
    assert step.state == () and step.masks == ()
    params = {p: v for p, v in model.init(rng).items()}
    params = {p: v + rng.normal(scale=0.3, size=v.shape) for p, v in params.items()}
    x = rng.normal(size=(5, 3))
    onehot = np.eye(3)[rng.integers(0, 3, 5)]
    out = NumpyRunner(step.graph)({step.x: x, step.target: onehot, step.lr: 1.0, **params})
    new_params = out[2:]
    numeric = numeric_grad(step.loss, {step.x: x, step.target: onehot, **params}, step.params)
    for p, new in zip(step.params, new_params):
        backprop = params[p] - new  # SGD with lr 1: the gradient of loss + l2 term
        want = numeric[p].value + (l2 * params[p] if p.ndim == 2 else 0)
        np.testing.assert_allclose(backprop, want, rtol=1e-6, atol=1e-9)


def test_correct_count_matches_argmax():
    rng = np.random.default_rng(1)
    logits, targets = gv.var("z", (50, 4)), gv.var("t", (50, 4))
    zv = rng.normal(size=(50, 4))
    labels = rng.integers(0, 4, 50)
    got = gv.value(correct_count(logits, targets), {"z": zv, "t": np.eye(4)[labels]})
    assert got == np.sum(np.argmax(zv, 1) == labels)
    one, col = gv.var("z1", (50, 1)), gv.var("t1", (50, 1))
    got = gv.value(correct_count(one, col), {"z1": zv[:, :1], "t1": labels[:, None] % 2})
    assert got == np.sum((zv[:, 0] > 0) == (labels % 2 == 1))


def test_step_graph_lists_optimizer_state_and_dropout_masks_as_inputs():
    model = DropoutMLP(2, 3, 2)
    step = build_train_step(model, 4, (2,), optimizer=get_optimizer("adam"), dtype="float64")
    assert [m.name for m in step.masks] == ["0.mask"]
    assert len(step.state) == 2 + 2 * 4 and len(step.new_state) == len(step.state)
    assert set(step.graph.variables()) == set(step.inputs)
    assert step.graph.outputs == (step.loss, step.correct, *step.new_params, *step.new_state)
    ev = build_eval_step(model, 7, (2,), dtype="float64")
    assert ev.graph.outputs[-1].shape == (7, 2)
    assert {n.name for n in ev.graph.variables()} == {"x", "target", *[p.name for p in step.params]}


def test_devices_without_the_compiler_are_clear_errors(monkeypatch):
    assert resolve_device("numpy") == "numpy"
    with pytest.raises(GradvizError, match="unknown device"):
        resolve_device("tpu")
    monkeypatch.setattr("gradviz.nn.step._may_have_gpu", lambda: False)
    assert resolve_device("auto") == "cpu"  # no GPU: the compiled CPU step, Numba being here
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setitem(sys.modules, "gradviz.compiler", None)  # as if it were not installed
    assert resolve_device("auto") == "numpy"
    with pytest.raises(GradvizError, match="--device cpu needs the Numba compiler"):
        make_runner(gv.Graph(gv.var("a") * 2), "cpu")


def test_first_nonfinite_names_the_node_where_nan_starts():
    x = gv.var("x")
    y = gv.log(x) * 2.0 + 1.0
    line = first_nonfinite(gv.Graph(y), {x: -1.0})
    assert "log" in line and "mul" not in line


# -- the loop -----------------------------------------------------------------------------------
def _config(**kw):
    defaults = dict(model="tiny", data="digits", epochs=2, batch=64, seed=0)
    return TrainConfig(**{**defaults, **kw})


def test_xor_is_learned_by_a_two_layer_net():
    ds = load_dataset("xor", dtype=np.float64)
    config = _config(data="xor", epochs=300, batch=4, optimizer="sgd", lr=0.5)
    result = Trainer(config, model=TinyMLP(2, 4, 2), dataset=ds).run()
    assert result.test_accuracy == 1.0
    assert result.history[-1].train_loss < 0.05


def test_digits_reach_over_90_percent_test_accuracy():
    ds = _digits()
    config = _config(epochs=6, batch=32, lr=0.01)
    result = Trainer(config, model=TinyMLP(64, 32, 10, "float32"), dataset=ds).run()
    assert result.test_accuracy > 0.9
    assert result.params["0.weight"].dtype == np.float32
    assert [r.epoch for r in result.history] == list(range(1, 7))
    assert result.epochs_run == 6 and result.resumed_from_epoch is None
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < losses[0]


def test_learning_rate_schedule_is_applied_per_epoch():
    ds = load_dataset("and", dtype=np.float64)
    config = _config(data="and", epochs=4, batch=4, optimizer="sgd", lr=0.4,
                     lr_decay="step:2:0.5")
    seen = []
    result = Trainer(config, model=TinyMLP(2, 2, 2), dataset=ds,
                     on_epoch=lambda record, params: seen.append(
                         (record.epoch, sorted(params)))).run()
    assert [r.lr for r in result.history] == [0.4, 0.4, 0.2, 0.2]
    assert seen == [(e, ["0.bias", "0.weight", "1.bias", "1.weight"]) for e in (1, 2, 3, 4)]


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path, optimizer):
    ds = _digits(n=300)
    config = _config(epochs=3, batch=50, optimizer=optimizer)

    def model():
        return DropoutMLP(64, 16, 10, "float32")

    straight = Trainer(config, model=model(), dataset=ds, checkpoint=tmp_path / "a").run()
    first = Trainer(_config(epochs=1, batch=50, optimizer=optimizer), model=model(), dataset=ds,
                    checkpoint=tmp_path / "b").run()
    assert first.epochs_run == 1
    resumed = Trainer(config, model=model(), dataset=ds, checkpoint=tmp_path / "b",
                      resume=True).run()
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_run == 2
    for name, value in straight.params.items():
        assert np.array_equal(value, resumed.params[name]), name
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    saved_a, saved_b = ckpt.load(tmp_path / "a"), ckpt.load(tmp_path / "b")
    assert saved_a.epoch == saved_b.epoch == 3
    for name, value in saved_a.state.items():
        assert np.array_equal(value, saved_b.state[name]), name


def test_a_partial_last_batch_gets_its_own_graph():
    ds = load_dataset("moons", n=50, seed=1, dtype=np.float64)
    trainer = Trainer(_config(data="moons", epochs=1, batch=16), model=TinyMLP(2, 3, 2),
                      dataset=ds)
    trainer.run()
    n = len(ds.X_train)
    assert sorted(trainer._steps) == sorted({16, n % 16} - {0})


class LogScaled(TinyMLP):
    """Outputs scaled by log(s) for a parameter s that starts negative: NaN at the first step."""

    def __init__(self):
        super().__init__(2, 2, 2)
        self.s = gv.param("scale", (), "float64")

    def __call__(self, x, *, train):
        return super().__call__(x, train=train) * gv.log(self.s)

    def parameters(self):
        return [*super().parameters(), self.s]

    def init(self, rng):
        return {**super().init(rng), self.s: np.array(-1.0)}


def test_non_finite_loss_stops_with_the_step_and_the_node(tmp_path):
    ds = load_dataset("and", dtype=np.float64)
    config = _config(data="and", epochs=3, batch=4, optimizer="sgd")
    with pytest.raises(NonFiniteLoss) as info:
        Trainer(config, model=LogScaled(), dataset=ds, checkpoint=tmp_path).run()
    message = str(info.value)
    assert "the loss is nan at epoch 1, step 1" in message
    assert "first non-finite value at %" in message and "log(" in message
    assert not ckpt.exists(tmp_path)


class InPlaceRunner(NumpyRunner):
    """Writes new parameters and state into the arrays fed in, as a compiled step does."""

    def __init__(self, step):
        super().__init__(step.graph)
        self.step = step

    def __call__(self, feeds):
        out = super().__call__(feeds)
        for leaf, value in zip((*self.step.params, *self.step.state), out[2:]):
            np.copyto(feeds[leaf], value)
        return out


def test_non_finite_loss_on_an_in_place_device_is_traced_from_the_values_before_the_step(
        monkeypatch):
    from gradviz.nn.step import TrainStep

    monkeypatch.setattr("gradviz.nn.training.make_runner",
                        lambda target, device, like=None: InPlaceRunner(target)
                        if isinstance(target, TrainStep) else NumpyRunner(target))
    ds = load_dataset("and", dtype=np.float64)
    config = _config(data="and", epochs=3, batch=4, optimizer="sgd")
    with pytest.raises(NonFiniteLoss, match=r"step 1; first non-finite value at %\d+ .*log\("):
        Trainer(config, model=LogScaled(), dataset=ds, device="cpu").run()


# -- the named models ---------------------------------------------------------------------------
def test_the_slides_xor_story_one_perceptron_fails_two_layers_succeed():
    common = dict(data="xor", batch=4, optimizer="sgd", lr=0.5, epochs=200)
    single = Trainer(TrainConfig(model="perceptron", **common), device="numpy").run()
    assert single.test_accuracy <= 0.75  # no line separates XOR
    gate = Trainer(TrainConfig(model="perceptron", **{**common, "data": "and"}),
                   device="numpy").run()
    assert gate.test_accuracy == 1.0  # AND is linearly separable
    double = Trainer(TrainConfig(model="mlp", hidden=(8,), **common),
                     device="numpy").run()
    assert double.test_accuracy == 1.0


def test_mlp_learns_digits_and_the_checkpoint_predicts_raw_inputs(tmp_path):
    from sklearn.datasets import load_digits

    from gradviz.nn.training import TrainedModel

    # the plain loss (digits' default label smoothing 0.2 reaches 94.7% in these 8 epochs)
    config = TrainConfig(model="mlp", data="digits", hidden=(64,), epochs=8, lr=0.003,
                         label_smoothing=0.0)
    result = Trainer(config, device="numpy", checkpoint=tmp_path).run()
    assert result.test_accuracy > 0.95
    trained = TrainedModel(tmp_path)
    raw = load_digits()
    predicted = trained.predict(raw.data[:200])  # raw 0..16 pixels, normalized inside
    assert predicted.shape == (200,) and np.mean(predicted == raw.target[:200]) > 0.95
    assert trained.predict(raw.data[0]).shape == (1,)
    with pytest.raises(GradvizError, match="do not fit the model"):
        trained.predict(np.zeros((2, 10)))


# -- checkpoints --------------------------------------------------------------------------------
def _trained(tmp_path, epochs=1):
    ds = load_dataset("and", dtype=np.float64)
    config = _config(data="and", epochs=epochs, batch=4)
    Trainer(config, model=TinyMLP(2, 2, 2), dataset=ds, checkpoint=tmp_path).run()
    return config, ds


def test_checkpoint_round_trip_and_old_arrays_are_removed(tmp_path):
    _trained(tmp_path, epochs=2)
    found = ckpt.load(tmp_path)
    assert found.epoch == 2 and set(found.params) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert "0.weight.m" in found.state and found.meta["config"]["optimizer"] == "adam"
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 1
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


@pytest.mark.parametrize("damage", ["truncate-npz", "bad-json", "no-npz", "wrong-version"])
def test_corrupt_checkpoints_are_one_line_errors(tmp_path, damage):
    config, ds = _trained(tmp_path)
    meta_path = tmp_path / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    arrays = tmp_path / meta["arrays"]
    if damage == "truncate-npz":
        arrays.write_bytes(arrays.read_bytes()[:100])
    elif damage == "bad-json":
        meta_path.write_text(meta_path.read_text()[:-20])
    elif damage == "no-npz":
        arrays.unlink()
    else:
        meta_path.write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(GradvizError) as info:
        Trainer(_config(data="and", epochs=2, batch=4), model=TinyMLP(2, 2, 2), dataset=ds,
                checkpoint=tmp_path, resume=True).run()
    assert "\n" not in str(info.value) and "checkpoint" in str(info.value)


def test_mismatched_checkpoint_and_overwriting_are_refused(tmp_path):
    _, ds = _trained(tmp_path)
    with pytest.raises(GradvizError, match=r"mismatched.*--optimizer adam vs sgd"):
        Trainer(_config(data="and", epochs=2, batch=4, optimizer="sgd"),
                model=TinyMLP(2, 2, 2), dataset=ds, checkpoint=tmp_path, resume=True).run()
    with pytest.raises(GradvizError, match=r"mismatched.*'0.weight'"):
        Trainer(_config(data="and", epochs=2, batch=4), model=TinyMLP(2, 3, 2), dataset=ds,
                checkpoint=tmp_path, resume=True).run()
    with pytest.raises(GradvizError, match="already holds a checkpoint"):
        Trainer(_config(data="and", epochs=2, batch=4), model=TinyMLP(2, 2, 2), dataset=ds,
                checkpoint=tmp_path).run()
    assert ckpt.load(tmp_path).epoch == 1  # nothing was lost


def test_config_validation():
    for bad in (dict(epochs=0), dict(batch=-1), dict(lr=0.0), dict(l2=-1.0), dict(seed=-2),
                dict(optimizer="adagrad"), dict(lr_decay="exp:2"), dict(hidden=(0,))):
        with pytest.raises(GradvizError):
            _config(**bad)
    config = _config(hidden=(8, 4), lr_decay="exp:0.9")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- the command line ---------------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from gradviz.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


SUMMARY_KEYS = ["model", "data", "device", "epochs_run", "train_loss", "val_accuracy",
                "test_accuracy", "seconds", "samples_per_sec", "resumed_from_epoch"]


def test_cli_train_json_lines_then_evaluate_agrees(tmp_path):
    run = tmp_path / "run"
    result = _cli("train", "--model", "mlp", "--data", "digits", "--hidden", "32", "--epochs", 3,
                  "--lr", 0.01, "--device", "numpy", "--checkpoint", run, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2, 3]
    summary = lines[-1]
    assert list(summary) == SUMMARY_KEYS
    assert summary["device"] == "numpy" and summary["epochs_run"] == 3
    assert summary["resumed_from_epoch"] is None and summary["test_accuracy"] > 0.9
    evaluated = _cli("evaluate", "--checkpoint", run, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == report["examples"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(report["accuracy"])
    text = _cli("evaluate", "--checkpoint", run, "--split", "val")
    assert text.exit_code == 0 and "true \\ predicted" in text.output


def test_cli_resume_with_dropout_model_file_is_bit_exact(tmp_path):
    spec = {"layers": ["flatten", {"type": "linear", "units": 16}, "tanh",
                       {"type": "dropout", "rate": 0.3}, {"type": "linear", "units": "classes"}]}
    model = tmp_path / "net.json"
    model.write_text(json.dumps(spec))
    common = ["--model", model, "--data", "digits", "--batch", 100, "--device", "numpy",
              "--optimizer", "rmsprop", "--l2", 0.001, "--lr-decay", "exp:0.8", "--json"]
    whole = _cli("train", *common, "--epochs", 2, "--checkpoint", tmp_path / "a")
    assert whole.exit_code == 0, whole.output
    half = _cli("train", *common, "--epochs", 1, "--checkpoint", tmp_path / "b")
    assert half.exit_code == 0, half.output
    rest = _cli("train", "--checkpoint", tmp_path / "b", "--resume", "--epochs", 2, "--json")
    assert rest.exit_code == 0, rest.output
    summary = json.loads(rest.output.strip().splitlines()[-1])
    assert summary["resumed_from_epoch"] == 1 and summary["epochs_run"] == 1
    a, b = ckpt.load(tmp_path / "a"), ckpt.load(tmp_path / "b")
    assert a.epoch == b.epoch == 2
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    assert json.loads(whole.output.strip().splitlines()[-1])["test_accuracy"] == \
        summary["test_accuracy"]
    model.unlink()  # the checkpoint keeps the model's description
    evaluated = _cli("evaluate", "--checkpoint", tmp_path / "b", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize("args, message", [
    (["--model", "nope", "--data", "xor"], "unknown model 'nope'"),
    (["--model", "mlp", "--data", "nope"], "nope"),
    (["--model", "mlp", "--data", "xor", "--epochs", "0"], "--epochs must be a positive"),
    (["--model", "mlp", "--data", "xor", "--batch", "-3"], "--batch must be a positive"),
    (["--model", "mlp", "--data", "xor", "--lr", "-1"], "--lr must be a positive"),
    (["--model", "mlp", "--data", "xor", "--lr-decay", "cosine"], "--lr-decay"),
    (["--model", "mlp", "--data", "xor", "--hidden", "4,x"], "--hidden"),
    (["--data", "xor"], "missing option --model"),
    (["--model", "mlp", "--data", "xor", "--resume"], "--resume needs --checkpoint"),
    (["--model", "mlp", "--data", "xor", "--plot", "curves.gif"], "--plot writes"),
])
def test_cli_train_bad_input_is_exit_2(args, message):
    result = _cli("train", *args, "--device", "numpy")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_checkpoint_problems_are_exit_2_without_traceback(tmp_path):
    missing = _cli("train", "--checkpoint", tmp_path / "none", "--resume")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    run = tmp_path / "run"
    ok = _cli("train", "-m", "logreg", "-d", "and", "--epochs", 1, "--device", "numpy",
              "--checkpoint", run)
    assert ok.exit_code == 0, ok.output
    again = _cli("train", "-m", "logreg", "-d", "and", "--epochs", 1, "--device", "numpy",
                 "--checkpoint", run)
    assert again.exit_code == 2 and "already holds a checkpoint" in again.output
    other = _cli("train", "--checkpoint", run, "--resume", "--data", "or")
    assert other.exit_code == 2 and "mismatched" in other.output and "--data and vs or" \
        in other.output
    meta = json.loads((run / "checkpoint.json").read_text())
    (run / meta["arrays"]).write_bytes(b"PK\x03\x04 not really a zip")
    for args in (["train", "--checkpoint", run, "--resume", "--epochs", 2],
                 ["evaluate", "--checkpoint", run]):
        result = _cli(*args)
        assert result.exit_code == 2, result.output
        assert "corrupt checkpoint" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_cli_device_without_compiler_and_plot(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradviz.compiler", None)  # as if it were not installed
    result = _cli("train", "-m", "logreg", "-d", "and", "--device", "cpu", "--epochs", 1)
    assert result.exit_code == 2 and "needs the Numba compiler" in result.output
    curves = tmp_path / "curves.png"
    result = _cli("train", "-m", "mlp", "-d", "xor", "--hidden", "4", "--epochs", 3,
                  "--device", "auto", "--plot", curves)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "epoch 3/3" in result.output
    assert "device numpy" in result.output
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_regression_on_a_csv_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=120)
    table = tmp_path / "table.csv"
    table.write_text("a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(X, y)))
    run = tmp_path / "run"
    result = _cli("train", "-m", "mlp", "-d", table, "--target", "y", "--hidden", 8,
                  "--epochs", 15, "--lr", 0.01, "--device", "numpy", "--checkpoint", run,
                  "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert lines[-1]["test_accuracy"] is None and lines[-1]["val_accuracy"] is None
    assert lines[-1]["train_loss"] < 0.2 * lines[0]["train_loss"]  # MSE, going down
    report = json.loads(_cli("evaluate", "--checkpoint", run, "--json").output)
    assert report["accuracy"] is None and "confusion" not in report and report["loss"] > 0
