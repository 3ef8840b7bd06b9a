"""Pictures of real networks fit for a slide: layer boxes named as the model names them, a
training step as a forward chain with a mirrored backward chain and one update per parameter
group, slide-sized, with a legend; PNG resolution; gates sized by their text."""
from __future__ import annotations

import re

import pytest

import gradviz as gv
from gradviz.errors import GradvizError
from gradviz.render import draw
from gradviz.render.diagram import slide_scale, svg_size


def _lenet_step(optimizer="adam"):
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import get_optimizer
    from gradviz.nn.step import build_train_step

    lenet = build_model("lenet", (1, 28, 28), 10)
    return build_train_step(lenet, 8, (1, 28, 28), optimizer=get_optimizer(optimizer))


def _edges(dot: str) -> list[tuple[str, str]]:
    """The drawn edges (invisible ones only order boxes within a rank)."""
    return [(a, b) for a, b, rest in re.findall(r"^\s*(\w+) -> (\w+)(.*)$", dot, re.M)
            if "style=invis" not in rest]


def _smallest_font(svg: str) -> float:
    return min(float(v) for v in re.findall(r'font-size="([\d.]+)"', svg))


def test_lenet_layers_are_named_as_the_model_names_them():
    from gradviz.nn.models import build_model

    lenet = build_model("lenet", (1, 28, 28), 10)
    x = gv.var("x", (1, 1, 28, 28), "float32")
    dot = draw(lenet(x, train=False), collapse=True).dot
    for name in ("C1", "S2", "C3", "S4", "F5 (C5)", "F6", "output"):
        assert f"<B>{name}</B>" in dot, name
    assert "layer 0" not in dot and "layer 3" not in dot
    assert "Conv2d(1 -&gt; 6, 5x5, pad 2) + Tanh" in dot and "156 params" in dot
    assert "out 1x6x28x28" in dot


def test_anonymous_layers_are_named_by_what_they_are():
    from gradviz.nn.models import build_model

    mlp = build_model("mlp", (784,), 10, hidden=(256,))
    x = gv.var("x", (2, 784), "float32")
    dot = draw(gv.sum(mlp(x, train=False)), collapse=True).dot
    assert "<B>Linear(784 -&gt; 256)</B>" in dot and "<B>Linear(256 -&gt; 10)</B>" in dot
    assert "200,960 params" in dot


def test_training_step_mirrors_the_forward_chain():
    step = _lenet_step()
    dot = draw(step, collapse=True).dot
    boxes = dict(re.findall(r"^\s*(box_\w+) \[label=<.*?<B>([^<]+)</B>", dot, re.M))
    titles = set(boxes.values())
    for name in ("C1", "S2", "C3", "S4", "F5 (C5)", "F6", "output"):
        assert name in titles and f"{name} backward" in titles, name
    for name in ("C1", "C3", "F5 (C5)", "F6", "output"):
        assert f"{name} update" in titles, name
    assert "loss" in titles
    edges = _edges(dot)
    assert not any((b, a) in edges for a, b in edges), "arrows both ways between two boxes"
    # the backward chain runs from the output back to C1
    by_title = {t: k for k, t in boxes.items()}
    chain = ["output", "F6", "F5 (C5)", "S4", "C3", "S2", "C1"]
    for upper, lower in zip(chain, chain[1:]):
        a, b = by_title[f"{lower} backward"], by_title[f"{upper} backward"]
        assert re.search(rf"{a} -> {b} \[[^]]*dir=back", dot), (upper, lower)
    for name in ("C1", "F6"):
        assert (by_title[f"{name} backward"], by_title[f"{name} update"]) in edges
    # each layer's backward box and update share its rank
    assert re.search(r"rank=same; box_f_0; box_b_0; box_u_0", dot)


def test_lenet_step_fits_a_16_9_slide_with_10pt_text():
    svg = draw(_lenet_step(), collapse=True, title="LeNet-5 training step").to_bytes().decode()
    size = svg_size(svg)
    scale = slide_scale(size)
    assert _smallest_font(svg) * scale >= 10, (size, scale)


def test_rankdir_and_legend_options():
    step = _lenet_step("sgd")
    tb = draw(step, collapse=True, rankdir="TB")
    lr = draw(step, collapse=True, rankdir="LR")
    assert "rankdir=TB" in tb.dot and "rankdir=LR" in lr.dot
    auto = draw(step, collapse=True)
    assert auto.dot in (tb.dot, lr.dot)
    assert slide_scale(auto.size()) >= 0.95 * max(slide_scale(tb.size()), slide_scale(lr.size()))
    assert ">backward</FONT>" in tb.dot
    assert "backward</FONT>" not in draw(step, collapse=True, legend=False).dot
    with pytest.raises(GradvizError, match="LR or TB"):
        draw(step, collapse=True, rankdir="RL")


def test_value_legend_follows_what_is_shown():
    x, y = gv.vars("x y")
    both = draw(x * y, {"x": 2, "y": 3}).dot
    assert all(w in both for w in (">value<", ">gradient<", ">local derivative<"))
    forward = draw(x * y, {"x": 2, "y": 3}, view="forward").dot
    assert ">value<" in forward and ">gradient<" not in forward
    checked = draw(gv.relu(x) * y, {"x": 0, "y": 1}, check=True).dot
    assert ">kink (no derivative)<" in checked
    assert ">value<" not in draw(x * y, {"x": 2, "y": 3}, legend=False).dot


def test_png_scale_and_dpi(tmp_path):
    from PIL import Image

    x, y, z = gv.vars("x y z")
    d = draw((x + y) * z, {"x": -2, "y": 5, "z": -4})
    w, h = svg_size(d.to_bytes("svg"))
    sizes = {}
    for name, options in (("default", {}), ("s1", {"scale": 1}), ("s3", {"scale": 3}),
                          ("d144", {"dpi": 144})):
        path = d.render(str(tmp_path / f"{name}.png"), **options)
        sizes[name] = Image.open(path).size
    assert abs(sizes["s1"][0] - w * 96 / 72) < 4
    assert abs(sizes["default"][0] - 2 * sizes["s1"][0]) < 6
    assert abs(sizes["s3"][0] - 3 * sizes["s1"][0]) < 8
    assert abs(sizes["d144"][0] - 1.5 * sizes["s1"][0]) < 6
    with pytest.raises(GradvizError, match="not both"):
        d.to_bytes("png", scale=2, dpi=100)
    with pytest.raises(GradvizError, match="--scale"):
        d.to_bytes("png", scale=1000)


def test_gates_are_sized_by_their_text():
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import get_optimizer
    from gradviz.nn.step import build_train_step

    mlp = build_model("mlp", (4,), 3, hidden=(8,))
    step = build_train_step(mlp, 16, (4,), optimizer=get_optimizer("sgd"))
    svg = draw(step).to_bytes("svg").decode()
    radii = [float(r) for r in re.findall(r'<ellipse[^>]*rx="([\d.]+)"', svg)]
    assert max(radii, default=0) < 40  # no circle hundreds of points across
    x = gv.var("x")
    assert "shape=circle" in draw(x * -1.0, {"x": 2.0}).dot


def test_cli_draw_options(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from gradviz.cli import cli

    out = tmp_path / "f.png"
    result = CliRunner().invoke(cli, ["draw", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", str(out),
                                      "--scale", "1", "--rankdir", "TB", "--no-legend"])
    assert result.exit_code == 0, result.output
    small = Image.open(out).size
    result = CliRunner().invoke(cli, ["draw", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", str(out),
                                      "--dpi", "192", "--rankdir", "TB", "--no-legend"])
    assert result.exit_code == 0, result.output
    assert abs(Image.open(out).size[0] - 2 * small[0]) < 6
    result = CliRunner().invoke(cli, ["draw", "x", "--at", "x=1", "-o", str(out), "--scale", "0"])
    assert result.exit_code == 2 and "--scale" in result.output
