"""Notebook display (gradviz.notebook): what each object shows in Jupyter, tested through its
`_repr_*_` methods directly, and examples/notebook.ipynb executed with nbclient (skipped when
nbclient, nbformat or ipykernel is missing)."""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gradviz as gv
from gradviz.notebook import MAX_NODES, StepPaths, curves_svg, stepper_iframe, training_html
from gradviz.verify.explain import explain
from gradviz.verify.report import GradientReport, GradientRow

ROOT = Path(__file__).resolve().parent.parent
POINT = {"x": -2, "y": 5, "z": -4}


@pytest.fixture
def circuit():
    x, y, z = gv.vars("x y z")
    return x, y, z, (x + y) * z


def _texts(svg: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def test_import_gradviz_stays_light():
    code = ("import sys, gradviz, gradviz.notebook; "
            "heavy = [m for m in ('IPython', 'graphviz', 'matplotlib', 'sympy', 'numba') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_node_and_a_graph_draw_their_structure(circuit):
    x, y, z, f = circuit
    svg = f._repr_svg_()
    assert "<svg" in svg
    texts = _texts(svg)
    assert {"x", "y", "z", "+", "*"} <= set(texts)
    assert not any(t.startswith("=") for t in texts)  # a node has no values
    assert gv.Graph(f)._repr_svg_() == svg
    assert "<svg" in gv.Graph([f, x + z])._repr_svg_()  # several outputs
    assert repr(f) == "<Node mul>" and repr(gv.Graph(f)) == "<Graph 5 nodes, 1 output(s)>"


def test_big_graphs_show_their_text_only():
    xs = gv.vars(" ".join(f"x{k}" for k in range(MAX_NODES)))
    total = xs[0]
    for v in xs[1:]:
        total = total + v
    assert len(gv.Graph(total)) > MAX_NODES
    assert total._repr_svg_() is None and gv.Graph(total)._repr_svg_() is None
    assert gv.backprop(total, {v.name: 1.0 for v in xs})._repr_svg_() is None


def test_a_tensor_graph_draws_too():
    X = gv.var("X", (2, 3))
    W = gv.param("W", (3, 4))
    out = gv.sum(gv.relu(X @ W))
    assert "<svg" in out._repr_svg_()


def test_a_backprop_result_draws_values_and_gradients(circuit):
    x, y, z, f = circuit
    r = gv.backprop(f, POINT)
    texts = _texts(r._repr_svg_())
    assert "= -12" in texts and "= 3" in texts  # forward values
    assert "grad -4" in texts and "grad 3" in texts  # gradients
    assert "local 3" in texts  # a local derivative on an edge
    assert repr(r) == "<Backprop value=-12.0 grads: x=-4.0, y=-4.0, z=3.0>"


def test_an_explanation_shows_its_latex(circuit):
    x, y, z, f = circuit
    e = explain(f, "x", POINT)
    latex = e._repr_latex_()
    blocks = re.findall(r"\$\$(.*?)\$\$", latex, re.S)
    assert len(blocks) == 2 and latex == "\n".join(f"$${b}$$" for b in blocks)
    for block in blocks:  # each block is one aligned environment, whole
        assert block.startswith(r"\begin{aligned}") and block.endswith(r"\end{aligned}")
    assert r"\frac{\partial f}{\partial x}" in blocks[1] and "&= -4" in blocks[1]
    assert "".join(blocks).replace("\n", "") == e.latex().replace("\n", "")
    assert repr(e).startswith("Explanation(")


def test_an_explanation_of_several_paths_ends_with_the_sum():
    x, y = gv.vars("x y")
    e = explain(x * x + y, "x", {"x": 3, "y": 1})
    blocks = re.findall(r"\$\$(.*?)\$\$", e._repr_latex_(), re.S)
    assert r"\sum" in blocks[-1] and "= 6" in blocks[-1]


def test_a_gradient_report_is_an_html_table():
    report = gv.gradient_report("(x+y)*z", at=POINT)
    out = report._repr_html_()
    assert out.count("<tr>") == 4  # the head and one row per variable
    for text in ("f = (x+y)*z   at x=-2, y=5, z=-4", "f = -12", "df/dx", "finite diff.", "x + y",
                 "backprop, finite differences and SymPy agree"):
        assert text in html.unescape(out), text
    assert "#1a7f37" in out and "#cf222e" not in out  # green verdicts, no red


def test_a_report_escapes_and_colours_disagreement_and_kinks():
    bad = GradientRow("x", 1.0, 2.0, 2.0, "a<b", 1e-9, "ok", "proved", False)
    kink = GradientRow("y", 0.0, float("nan"), None, None, float("nan"), "kink", None, None)
    out = GradientReport("x<y & z", {"x": 1.0}, 3.0, [bad, kink])._repr_html_()
    assert "x&lt;y &amp; z" in out and "a&lt;b" in out and "<b>" not in out
    assert "DISAGREE" in out and "#cf222e" in out  # red
    assert "not differentiable here (kink)" in out and "#9a6700" in out  # amber
    assert "gradients DISAGREE: df/dx" in out


def test_a_report_with_node_checks_shows_them():
    x, w = gv.vars("x w")
    report = gv.gradient_report(gv.tanh(w * x), at={"x": 0.5, "w": 2.0}, nodes=True)
    assert "<pre>" in report._repr_html_() and "VJP rule" in report._repr_html_()


def test_claim_checks_are_html_tables():
    p, t = gv.vars("p t")
    loss = gv.log(gv.cosh(p - t))
    refuted = gv.check_claim(loss, p, 1 / gv.cosh(p - t), points=5)._repr_html_()
    assert "refuted" in refuted and "counterexample" in refuted and "claimed" in refuted
    assert "#cf222e" in refuted
    verified = gv.check_claim(loss, p, gv.tanh(p - t), points=5)._repr_html_()
    assert "verified" in verified and "counterexample" not in verified
    assert "#1a7f37" in verified


def test_steps_returns_the_same_list_which_shows_a_stepper(circuit, tmp_path):
    from gradviz.render import steps

    x, y, z, f = circuit
    paths = steps(f, POINT, tmp_path / "frames")
    expected = [str(tmp_path / "frames" / f"step-{k:03d}.svg") for k in range(5)]
    expected.append(str(tmp_path / "frames" / "index.html"))
    assert isinstance(paths, list) and isinstance(paths, StepPaths)
    assert paths == expected and repr(paths) == repr(expected) and paths[-1] == paths.index
    shown = paths._repr_html_()
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts" '
                         r'style="width: 100%; height: (\d+)px; [^"]*" title="[^"]*"></iframe>',
                         shown)
    assert match, shown[:300]
    page = html.unescape(match.group(1))
    assert page == Path(paths.index).read_text(encoding="utf-8")
    assert page.count('class="frame"') == 5 and "<svg" in page
    assert 320 <= int(match.group(2)) <= 900
    # without the page in memory, the file is read; without the file, only the text shows
    assert StepPaths(list(paths))._repr_html_() == shown
    os.remove(paths.index)
    assert StepPaths(list(paths))._repr_html_() is None


def test_a_stepper_iframe_quotes_everything():
    out = stepper_iframe('<p title="a &amp; b">\'x\'</p>')
    assert '"' not in out.split('srcdoc="')[1].split('" sandbox')[0]
    assert "height: 560px" in out  # no picture: a default height


@pytest.fixture(scope="module")
def trained():
    from gradviz.nn.training import TrainConfig, Trainer

    config = TrainConfig(model="mlp", data="moons", hidden=(4,), epochs=3, batch=32, lr=0.05)
    return Trainer(config, device="numpy").run()


def test_training_curves_and_result_show_themselves(trained):
    svg = curves_svg(trained.history, "mlp on moons")
    assert svg.startswith("<svg") and "</svg>" in svg
    assert curves_svg([]) is None
    out = training_html(trained)
    assert "<table" in out and "<svg" in out and "moons" in out and "test accuracy" in out
    assert out.count("<td") == 8
    assert trained.history._repr_svg_().startswith("<svg")
    shown = trained._repr_html_()
    assert shown.startswith("<div><table") and "<svg" in shown and "best epoch" not in shown
    assert repr(trained).startswith("TrainResult(")


def test_a_run_with_early_stopping_shows_its_best_epoch():
    from gradviz.nn.training import TrainConfig, Trainer

    config = TrainConfig(model="mlp", data="moons", hidden=(4,), epochs=3, batch=32, lr=0.05,
                         patience=5)
    result = Trainer(config, device="numpy").run()
    assert "best epoch" in result._repr_html_() and result.history.best_epoch is not None


def test_the_python_api_page_example_runs(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "python-api.md").read_text()
    block = page.split("<!-- notebook example -->\n```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/python-api.md", "exec"), {})
    assert (tmp_path / "steps-xyz" / "index.html").is_file()


# -- the example notebook ------------------------------------------------------------------------
def _executed(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (no Python kernel)")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def test_example_notebook_runs_and_shows_pictures_formulas_and_tables(tmp_path, monkeypatch):
    nb = _executed(tmp_path, monkeypatch)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {kind for o in outputs for kind in o.get("data", {})}
    assert {"image/svg+xml", "text/latex", "text/html"} <= kinds
    by_source = {c.source.splitlines()[-1]: c.outputs for c in nb.cells if c.cell_type == "code"}
    first = by_source["f                      # a node draws its graph"][0]["data"]
    assert first["text/plain"] == "<Node mul>" and "<svg" in first["image/svg+xml"]
    assert "grad -4" in _texts(by_source["r"][0]["data"]["image/svg+xml"])
    latex = by_source['explain(f, "x", point)'][0]["data"]["text/latex"]
    assert r"\frac{\partial f}{\partial x}" in latex
    stepper = by_source["paths"][0]["data"]
    assert stepper["text/plain"].startswith("['steps-xyz/step-000.svg'")
    assert stepper["text/html"].startswith("<iframe srcdoc=")
    assert (tmp_path / "steps-xyz" / "index.html").is_file()
    assert "agree" in by_source['gv.gradient_report("(x+y)*z", at=point)'][0]["data"]["text/html"]
    claim = by_source["gv.check_claim(gv.log(gv.cosh(p - t)), p, gv.tanh(p - t))"]
    assert "verified" in claim[0]["data"]["text/html"]
    curves = by_source["result.history          # loss and accuracy per epoch"][0]["data"]
    assert curves["image/svg+xml"].startswith("<svg")
    assert "test_accuracy" in by_source["result.summary()"][0]["data"]["text/plain"]
