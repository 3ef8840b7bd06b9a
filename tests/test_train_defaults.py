"""Training out of the box (issue 17) and `--device auto` (issue 18): the per data set defaults
learn each built-in set with no flags, early stopping keeps the best epoch, the history plots,
the compile notice appears only when a compile happens."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from gradviz.errors import GradvizError
from gradviz.nn import checkpoints as ckpt
from gradviz.nn.step import RunSize, choose_device
from gradviz.nn.training import (BEST_DIR, DEFAULTS, History, TrainConfig, Trainer,
                                 default_settings, epochs_shown)


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _accuracy(model, data, seed=0, **kw):
    return Trainer(TrainConfig(model=model, data=data, seed=seed, **kw), device="numpy").run()


# -- the defaults learn (the stated accuracies of docs/training.md) ---------------------------
@pytest.mark.parametrize("model,data,at_least", [
    ("perceptron", "and", 1.0), ("perceptron", "or", 1.0), ("mlp", "xor", 1.0),
    ("mlp", "moons", 0.97), ("mlp", "circles", 0.97), ("mlp", "spiral", 0.95)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_sets_are_learned_with_no_flags(model, data, at_least, seed):
    assert _accuracy(model, data, seed).test_accuracy >= at_least


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_mlp_with_no_flags(seed):   # issue 17: 97% on seeds 0-2 (label smoothing 0.2)
    result = _accuracy("mlp", "digits", seed)
    assert result.config.label_smoothing == 0.2 and result.test_accuracy >= 0.97


def test_digits_cnn_with_no_flags():
    result = _accuracy("cnn", "digits")
    assert result.config.label_smoothing == 0.2 and result.test_accuracy >= 0.98


def test_the_help_example_learns_xor():
    result = _cli("train", "-m", "mlp", "-d", "xor", "--hidden", "8", "--optimizer", "sgd",
                  "--lr", "0.5", "--epochs", "300", "--device", "numpy")
    assert result.exit_code == 0, result.output
    assert "test accuracy 100.00%" in result.output
    from gradviz.cli.train import train

    assert "--hidden 8 --optimizer sgd --lr 0.5 --epochs 300" in train.help


def test_defaults_table_and_what_the_user_gives_wins():
    assert DEFAULTS[-1][:2] == (("*",), ("*",))  # every run finds a row
    c = TrainConfig(model="perceptron", data="or")
    assert (c.optimizer, c.lr, c.batch, c.epochs) == ("sgd", 0.5, 4, 100)
    c = TrainConfig(model="mlp", data="spiral:classes=4")
    assert (c.optimizer, c.lr, c.epochs) == ("adam", 0.01, 100)
    c = TrainConfig(model="mlp", data="xor", optimizer="sgd")  # another optimizer: its own lr
    assert (c.optimizer, c.lr, c.batch) == ("sgd", None, 4)
    c = TrainConfig(model="mlp", data="digits", epochs=3, batch=16, lr=0.02)
    assert (c.epochs, c.batch, c.lr) == (3, 16, 0.02)
    assert default_settings("lenet", "mnist:/somewhere")["batch"] == 64
    # a model file or a custom model keeps the general defaults
    assert default_settings("net.json", "xor") == default_settings("tiny", "table.csv")
    assert default_settings("tiny", "and")["optimizer"] == "adam"


def test_start_line_says_settings_and_device_choice():
    result = _cli("train", "-m", "perceptron", "-d", "or")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "sgd lr 0.5, batch 4, 100 epochs, device numpy (auto: a short run" in first
    assert "test accuracy 100.00%" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("epoch")]
    assert len(lines) == 21 and lines[0].startswith("epoch   1/100")  # 1, 5, 10, ..., 100
    every = _cli("train", "-m", "perceptron", "-d", "or", "--epochs", 7, "--every", 3)
    assert [line.split()[1] for line in every.output.splitlines()
            if line.startswith("epoch")] == ["1/7", "3/7", "6/7", "7/7"]
    assert epochs_shown(20) == 1 and epochs_shown(100) == 5 and epochs_shown(300) == 20


def test_help_lists_every_model_and_data_set():
    from gradviz.data import DATASETS
    from gradviz.nn.models import MODELS

    text = " ".join(_cli("train", "--help").output.split())
    for name in [*MODELS, *DATASETS]:
        assert name.replace("-", "- ") in text or name in text, name


# -- --device auto ------------------------------------------------------------------------------
def test_auto_picks_the_interpreter_for_small_runs_and_the_compiled_step_for_long_ones(
        monkeypatch):
    monkeypatch.setattr("gradviz.nn.step.resolve_device", lambda device: "cpu")
    small = RunSize(steps=100, samples=400, macs_per_sample=3, cached=False)
    assert choose_device("auto", small)[0] == "numpy"
    assert "compiling would not pay off" in choose_device("auto", small)[1]
    long = RunSize(steps=9400, samples=600_000, macs_per_sample=420_000, cached=False)
    device, why = choose_device("auto", long)
    assert device == "cpu" and "long run" in why
    medium = RunSize(steps=1200, samples=37_740, macs_per_sample=50_826, cached=True)
    assert choose_device("auto", medium) == ("cpu", "auto: the compiled step is in the cache")
    assert choose_device("numpy", long) == ("cpu", "")  # (resolve_device is faked here)


def test_trainer_defaults_to_auto_and_says_why():
    trainer = Trainer(TrainConfig(model="perceptron", data="and"))
    assert trainer.device == "numpy" and trainer.device_reason.startswith("auto: a short run")
    size = trainer.run_size()
    assert (size.steps, size.samples, size.macs_per_sample) == (100, 400, 3)
    assert Trainer(TrainConfig(model="perceptron", data="and"), device="numpy").device_reason \
        == ""


class _Notes:
    def __init__(self):
        self.events = []

    def epoch_start(self, *a):
        pass

    def batch_end(self):
        pass

    def epoch_end(self, *a):
        pass

    def compile_start(self, device, certain):
        self.events.append(("start", device, certain))

    def compile_end(self, seconds):
        self.events.append(("end",))


@pytest.mark.parametrize("cached,announced", [(False, True), (True, False)])
def test_compile_notice_only_when_the_cache_says_a_compile_happens(monkeypatch, cached,
                                                                   announced):
    from gradviz.nn.step import NumpyRunner

    monkeypatch.setattr("gradviz.nn.training.step_is_cached",
                        lambda step, device, strict=False, threads=None, like=None: cached)
    monkeypatch.setattr("gradviz.nn.training.make_runner",
                        lambda target, device, like=None:
                        NumpyRunner(getattr(target, "graph", target)))
    notes = _Notes()
    trainer = Trainer(TrainConfig(model="perceptron", data="and", epochs=1), device="numpy",
                      reporter=notes)
    trainer.device = "cpu"   # as if compiled: the runner above stands in for the compiler
    trainer.run()
    assert notes.events == ([("start", "cpu", True), ("end",)] if announced else [])


def test_compile_notice_text_when_not_a_terminal(capsys):
    from gradviz.cli.train import CompileNotice

    notice = CompileNotice()
    notice.start("cpu", True)
    notice.end(2.04)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("compiling the training step for the CPU (first run of this model;"
                             " cached in ")
    assert err[1] == "compiled in 2.0 s"


# -- early stopping, best checkpoint, history -----------------------------------------------
def test_patience_stops_early_restores_and_saves_the_best_epoch(tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(model="mlp", data="digits", hidden=(32,), epochs=60, lr=0.01,
                         patience=2)
    result = Trainer(config, device="numpy", checkpoint=run).run()
    history = result.history
    assert history.stopped_early and len(history) < 60
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert len(history) - best == 2
    saved = ckpt.load(run / BEST_DIR)
    assert saved.epoch == best and ckpt.load(run).epoch == len(history)
    for name, value in saved.params.items():
        assert np.array_equal(value, result.params[name])   # the best epoch's, restored
    report = json.loads(_cli("evaluate", "--checkpoint", run / BEST_DIR, "--json").output)
    assert report["accuracy"] == pytest.approx(result.test_accuracy)


def test_cli_patience_says_where_it_stopped(tmp_path):
    result = _cli("train", "-m", "mlp", "-d", "digits", "--hidden", 32, "--lr", 0.01,
                  "--epochs", 60, "--early-stopping", 2, "--device", "numpy", "--json")
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["stopped_early"] is True and summary["best_epoch"] < summary["epochs_run"]
    text = _cli("train", "-m", "mlp", "-d", "digits", "--hidden", 32, "--lr", 0.01,
                "--epochs", 60, "--patience", 2, "--device", "numpy").output
    assert "early stop at epoch" in text and "restored" in text


def test_history_is_lists_a_sequence_and_a_table():
    result = Trainer(TrainConfig(model="perceptron", data="or", epochs=3), device="numpy").run()
    h = result.history
    assert isinstance(h, History) and h.epoch == [1, 2, 3] and len(h.train_loss) == 3
    assert h[-1].epoch == 3 and [r.epoch for r in h] == [1, 2, 3] and h[1:][0].epoch == 2
    assert str(h).splitlines()[0].startswith("epoch 1/3  loss ")
    assert h.plot().axes  # a matplotlib Figure, for a notebook


def test_verbose_trainer_prints_epoch_lines(capsys):
    Trainer(TrainConfig(model="perceptron", data="or", epochs=2), device="numpy",
            verbose=True).run()
    assert capsys.readouterr().out.splitlines()[1].startswith("epoch 2/2")


# -- label smoothing ----------------------------------------------------------------------------
def test_label_smoothing_default_is_the_mlp_and_cnn_on_digits_rows_only():
    assert TrainConfig(model="mlp", data="digits").label_smoothing == 0.2
    assert TrainConfig(model="mlp", data="digits", hidden=(64,), lr=0.01).label_smoothing == 0.2
    assert TrainConfig(model="cnn", data="digits").label_smoothing == 0.2
    for model, data in [("perceptron", "digits"), ("logreg", "digits"), ("mlp", "xor"),
                        ("mlp", "moons"), ("linear", "heights"), ("tiny", "digits")]:
        assert TrainConfig(model=model, data=data).label_smoothing == 0.0, (model, data)
    assert TrainConfig(model="mlp", data="digits", label_smoothing=0).label_smoothing == 0.0
    assert TrainConfig(model="logreg", data="digits", label_smoothing=0.1).label_smoothing == 0.1
    for bad in (-0.1, 1, 1.5, float("nan"), "0.1", True):
        with pytest.raises(GradvizError, match="label-smoothing"):
            TrainConfig(model="mlp", data="digits", label_smoothing=bad)


def test_smoothed_loss_is_cross_entropy_against_the_smoothed_targets():
    from gradviz.core.interpret import evaluate
    from gradviz.nn.training import smooth_targets, smoothed_loss
    from gradviz.ops import var

    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4))
    t = np.eye(4)[[0, 3, 1, 1, 2]]
    logits, targets = var("z", (5, 4), "float64"), var("t", (5, 4), "float64")
    feeds = {logits: z, targets: t}

    def value(node, feeds):
        return evaluate(node, feeds)[node]

    smoothed = value(smooth_targets(targets, 0.2), feeds)
    assert np.allclose(smoothed, 0.8 * t + 0.05) and np.allclose(smoothed.sum(1), 1)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = -np.mean(np.sum((0.8 * t + 0.05) * log_p, 1))
    assert np.isclose(float(value(smoothed_loss(0.2)(logits, targets), feeds)), want)
    # one logit (a binary perceptron): the 0/1 column moves toward 1/2
    column = var("c", (3, 1), "float64")
    got = value(smooth_targets(column, 0.2), {column: np.array([[0.0], [1.0], [1.0]])})
    assert np.allclose(got[:, 0], [0.1, 0.9, 0.9])


def test_label_smoothing_trains_on_soft_targets_and_counts_accuracy_on_the_labels():
    plain = _accuracy("mlp", "digits", hidden=(32,), epochs=5, lr=0.01, label_smoothing=0.0)
    smooth = _accuracy("mlp", "digits", hidden=(32,), epochs=5, lr=0.01)
    assert smooth.config.label_smoothing == 0.2
    # the same initialization and batches, another loss: other parameters
    assert not np.array_equal(plain.params["1.weight"], smooth.params["1.weight"])
    # training accuracy counts the true labels (fed soft targets, the correct count would find
    # almost every row "beaten", since the true logit is above the smoothed target's score)
    assert smooth.history.train_accuracy[-1] > 0.9
    # the training loss is against the smoothed targets: above their entropy (0.867 for 0.2)
    assert smooth.history.train_loss[-1] > 0.867 > plain.history.train_loss[-1]
    # validation and test losses are plain cross-entropy, on the same scale for both runs
    assert smooth.history.val_loss[-1] < 2 and smooth.test_loss < 2


def test_cli_label_smoothing_flag_start_line_and_refusals(tmp_path):
    out = _cli("train", "-m", "mlp", "-d", "digits", "--hidden", 16, "--epochs", 1,
               "--device", "numpy").output
    assert "30 epochs" not in out and "1 epochs, label smoothing 0.2, device numpy" in out
    out = _cli("train", "-m", "mlp", "-d", "digits", "--hidden", 16, "--epochs", 1,
               "--label-smoothing", 0, "--device", "numpy").output
    assert "label smoothing" not in out.splitlines()[0]
    out = _cli("train", "-m", "logreg", "-d", "digits", "--epochs", 1,
               "--label-smoothing", 0.1, "--device", "numpy").output
    assert "label smoothing 0.1, device numpy" in out.splitlines()[0]
    result = _cli("train", "-m", "linear", "-d", "heights", "--label-smoothing", 0.1)
    assert result.exit_code == 2
    assert "--label-smoothing is for classification; heights is a regression" in result.output
    result = _cli("train", "-m", "mlp", "-d", "digits", "--label-smoothing", 1)
    assert result.exit_code == 2 and "--label-smoothing must be a number in [0, 1)" in \
        result.output


def test_label_smoothing_is_saved_and_resumed_and_old_checkpoints_had_none(tmp_path):
    run = tmp_path / "run"
    common = ["-m", "mlp", "-d", "digits", "--hidden", 16, "--device", "numpy",
              "--checkpoint", run]
    assert _cli("train", *common, "--epochs", 1).exit_code == 0
    saved = ckpt.load(run).meta["config"]
    assert saved["label_smoothing"] == 0.2
    other = _cli("train", *common, "--epochs", 2, "--resume", "--label-smoothing", 0.1)
    assert other.exit_code == 2 and "--label-smoothing 0.2 vs 0.1" in other.output
    assert _cli("train", "--checkpoint", run, "--resume", "--epochs", 2).exit_code == 0
    # a configuration saved before the setting existed was trained without smoothing
    del saved["label_smoothing"]
    assert TrainConfig.from_dict(saved).label_smoothing == 0.0
