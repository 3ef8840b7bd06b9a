"""AlexNet as a named model: the paper's layer sizes and parameter count, and one training step
(forward and backward) on the CPU at batch 2."""
import numpy as np
import pytest

from gradviz.cli.summary import summary_report
from gradviz.errors import GradvizError
from gradviz.nn.models import build_model


def test_layer_table_and_parameter_count():
    report = summary_report("alexnet", None, 1000)
    assert report["input_shape"] == [3, 224, 224]
    assert report["total_params"] == 62_378_344          # "60 million parameters" (2012)
    rows = {r["label"]: r for r in report["layers"] if r["label"]}
    assert [rows[f"conv{i}"]["output_shape"] for i in range(1, 6)] == [
        [96, 55, 55], [256, 27, 27], [384, 13, 13], [384, 13, 13], [256, 13, 13]]
    assert [rows[k]["params"] for k in ("fc6", "fc7", "fc8")] == [
        9216 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 1000 + 1000]


def test_too_small_an_input_is_refused():
    with pytest.raises(GradvizError, match="at least 63x63"):
        build_model("alexnet", (3, 32, 32), 10)


def test_one_training_step_at_batch_2_on_the_cpu():
    from gradviz.nn.optim import get_optimizer
    from gradviz.nn.step import NumpyRunner, build_train_step

    model = build_model("alexnet", None, 10)
    step = build_train_step(model, 2, (3, 224, 224), optimizer=get_optimizer("sgd"))
    rng = np.random.default_rng(0)
    params = {p.name: np.asarray(v, p.dtype) for p, v in model.init(rng).items()}
    feeds = {step.x: rng.standard_normal((2, 3, 224, 224)).astype(np.float32),
             step.target: np.eye(10, dtype=np.float32)[[3, 7]],
             step.lr: np.float32(0.01)}
    feeds.update({p: params[p.name] for p in step.params})
    feeds.update({s: np.zeros(s.shape, s.dtype) for s in step.state})
    masks = model.random_inputs(rng, 2)
    by_name = {getattr(k, "name", k): v for k, v in masks.items()}
    feeds.update({m: by_name[m.name] for m in step.masks})
    out = NumpyRunner(step.graph)(feeds)
    loss = float(out[0])
    assert np.isfinite(loss) and 0 < loss < 20
    new = dict(zip((p.name for p in step.params), out[2:2 + len(step.params)]))
    moved = [name for name, v in new.items() if not np.array_equal(v, params[name])]
    assert len(moved) == len(step.params)       # every weight and bias got a gradient
