"""Decision regions of 2-D classifiers: the grid's classes, pictures, per-epoch frames."""
import re

import numpy as np
import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from gradviz.errors import GradvizError
from gradviz.lectures.regions import DecisionRegions, FrameWriter
from gradviz.nn.training import TrainConfig, Trainer

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def trained(model, data, **kw):
    trainer = Trainer(TrainConfig(model=model, data=data, **kw), device="numpy")
    return trainer, trainer.run()


def test_a_hand_set_line_splits_the_plane_where_it_should():
    # perceptron on OR with w = (1, 1), b = -0.5: class 1 exactly where x1 + x2 > 0.5
    trainer = Trainer(TrainConfig(model="perceptron", data="or", epochs=1), device="numpy")
    regions = DecisionRegions(trainer.model, trainer.dataset, resolution=41)
    (weight, bias) = [p.name for p in trainer.model.parameters()]
    params = {weight: np.array([[1.0], [1.0]], np.float32), bias: np.array([-0.5], np.float32)}
    grid = regions.classes(params)
    gx, gy = np.meshgrid(regions.xs, regions.ys)
    assert np.array_equal(grid, (gx + gy > 0.5).astype(int))
    assert regions.accuracy(params) == 1.0


def test_one_line_cannot_split_xor_but_a_hidden_layer_can():
    perceptron, result = trained("perceptron", "xor", epochs=100, batch=4, lr=0.1,
                                 optimizer="sgd")
    line = DecisionRegions(perceptron.model, perceptron.dataset, resolution=60)
    assert line.accuracy(result.params) <= 0.75       # a line gets at most 3 of the 4 right
    mlp, result = trained("mlp", "xor", hidden=(8,), epochs=300, batch=4, lr=0.05)
    regions = DecisionRegions(mlp.model, mlp.dataset, resolution=60)
    assert regions.accuracy(result.params) == 1.0
    assert len(np.unique(regions.classes(result.params))) == 2


def test_moons_regions_follow_the_data(tmp_path):
    trainer, result = trained("mlp", "moons", hidden=(16,), epochs=30, lr=0.05)
    regions = DecisionRegions(trainer.model, trainer.dataset)
    assert regions.accuracy(result.params, "train") >= 0.95
    # the grid covers every point, in raw (unnormalized) units
    raw = trainer.dataset.normalizer.invert(trainer.dataset.X_train)
    assert regions.xs[0] < raw[:, 0].min() and raw[:, 0].max() < regions.xs[-1]
    target = tmp_path / "moons.svg"
    regions.draw(result.params, str(target), "mlp on moons")
    assert target.read_text().lstrip().startswith("<?xml")


def test_spiral_with_three_classes_gets_three_regions():
    trainer, result = trained("mlp", "spiral", hidden=(32,), epochs=40, lr=0.02)
    regions = DecisionRegions(trainer.model, trainer.dataset, resolution=50)
    assert set(np.unique(regions.classes(result.params))) == {0, 1, 2}


def test_non_planar_data_is_refused():
    trainer = Trainer(TrainConfig(model="linear", data="heights", epochs=1), device="numpy")
    with pytest.raises(GradvizError, match="2-D points"):
        DecisionRegions(trainer.model, trainer.dataset)


def test_frames_and_their_stepper_page(tmp_path):
    trainer = Trainer(TrainConfig(model="perceptron", data="xor", epochs=3, batch=4),
                      device="numpy")
    regions = DecisionRegions(trainer.model, trainer.dataset, resolution=30)
    writer = FrameWriter(regions, str(tmp_path / "frames"), title="perceptron on xor")
    trainer.on_epoch = lambda record, params: writer(record.epoch, params, "note")
    trainer.run()
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert files == ["epoch-001.png", "epoch-002.png", "epoch-003.png", "index.html"]
    page = (tmp_path / "frames" / "index.html").read_text()
    assert re.findall(r'<img src="(epoch-\d+\.png)"', page) == files[:3]
    assert "perceptron on xor, epoch 3: note" in page


def test_cli_plot_regions_and_frames(tmp_path):
    picture, frames = tmp_path / "xor.png", tmp_path / "frames"
    result = run("train", "--model", "mlp", "--data", "xor", "--hidden", "8", "--epochs", "4",
                 "--batch", "4", "--device", "numpy", "--plot-regions", str(picture),
                 "--frames", str(frames))
    assert result.exit_code == 0, result.output
    assert picture.read_bytes()[:8] == PNG
    assert sorted(p.name for p in frames.iterdir()) == [
        "epoch-001.png", "epoch-002.png", "epoch-003.png", "epoch-004.png", "index.html"]
    assert "4 frame(s) and index.html" in result.output


@pytest.mark.parametrize("args, message", [
    (["--data", "heights", "--plot-regions", "r.png"], "2-D points"),
    (["--data", "moons", "--plot-regions", "r.gif"], ".png, .svg or .pdf"),
])
def test_cli_bad_input(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("train", "--model", "mlp", "--epochs", "1", "--device", "numpy", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
