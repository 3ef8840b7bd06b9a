"""`draw`: an annotated forward/backward diagram of a graph, as a `Diagram`."""
from __future__ import annotations

import html
from typing import Mapping, Sequence

from gradviz.errors import GradvizError
from gradviz.core.ir import Graph, Node
from gradviz.render import backend
from gradviz.render.dot import FAMILIES, MUTED, Marks, Namer, _font, _table, build, fmt, \
    gate_label, node_id

VIEWS = ("both", "forward", "gradients", "backward-graph")


class Diagram:
    """A drawn graph: `.dot` (DOT source), `.digraph` (a `graphviz.Digraph`),
    `.render(path)`, and inline display in Jupyter."""

    def __init__(self, digraph):
        self.digraph = digraph

    @property
    def dot(self) -> str:
        return self.digraph.source

    def to_bytes(self, fmt: str = "svg", *, scale: float | None = None,
                 dpi: float | None = None) -> bytes:
        """The picture in `fmt` (svg, png, pdf, dot). PNGs are drawn at `dpi` (default
        `PNG_DPI`), or `scale` times 96 dpi."""
        source = self.dot
        if fmt == "png":
            dpi = png_dpi(scale, dpi)
            source = source.rstrip().rstrip("}") + f"\tdpi={dpi:g}\n}}\n"
        return backend.render(source, fmt)

    def render(self, path: str, fmt: str | None = None, *, scale: float | None = None,
               dpi: float | None = None) -> str:
        """Write the picture to `path` (format from `fmt` or the suffix); returns the path.
        `scale` or `dpi` set a PNG's resolution (default 2x: 192 dpi, sharp on a projector)."""
        from gradviz.files import write_atomic

        data = self.to_bytes(backend.format_for(path, fmt), scale=scale, dpi=dpi)
        write_atomic(path, data)
        return path

    def size(self) -> tuple[float, float]:
        """(width, height) of the laid-out picture in points."""
        return svg_size(self.to_bytes("svg"))

    def _repr_svg_(self) -> str:
        return self.to_bytes("svg").decode()

    def __repr__(self) -> str:
        return f"<Diagram: {self.dot.count('->')} edges>"


#: PNG resolution: twice the 96 dpi screen default, so a picture stays sharp when a projector or
#: a slide scales it up.
PNG_DPI = 192.0
#: The largest PNG edge in pixels `png_dpi` allows (a huge scale would take minutes and gigabytes).
MAX_SCALE = 10.0


def png_dpi(scale: float | None = None, dpi: float | None = None) -> float:
    """The dpi a PNG is drawn at: `dpi`, or `scale` x 96, or `PNG_DPI`."""
    if scale is not None and dpi is not None:
        raise GradvizError("give a PNG's scale or its dpi, not both")
    if scale is not None:
        if not 0.1 <= scale <= MAX_SCALE:
            raise GradvizError(f"--scale must be between 0.1 and {MAX_SCALE:g}, got {scale:g}")
        return 96.0 * scale
    if dpi is not None:
        if not 10 <= dpi <= 96 * MAX_SCALE:
            raise GradvizError(f"--dpi must be between 10 and {96 * MAX_SCALE:g}, got {dpi:g}")
        return float(dpi)
    return PNG_DPI


def svg_size(svg: bytes | str) -> tuple[float, float]:
    """(width, height) in points of an SVG Graphviz wrote."""
    import re

    text = svg.decode() if isinstance(svg, bytes) else svg
    match = re.search(r'<svg[^>]*?width="([\d.]+)pt"[^>]*?height="([\d.]+)pt"', text, re.S)
    if not match:
        raise GradvizError("the renderer wrote an SVG without a size")
    return float(match.group(1)), float(match.group(2))


#: A 16:9 slide in points (13.33 x 7.5 in): 1 pt is 2 px when it is shown 1920 px wide.
SLIDE = (960.0, 540.0)


def slide_scale(size: tuple[float, float]) -> float:
    """How much a picture of `size` points is scaled to fit a 16:9 slide: a 10 pt text shows
    as 10 * slide_scale pt."""
    return min(SLIDE[0] / size[0], SLIDE[1] / size[1])


RANKDIRS = ("LR", "TB")


def choose_rankdir(make) -> tuple[str, object]:
    """(rankdir, digraph) of `make(rankdir)` that fits a 16:9 slide at the larger scale: both
    are laid out and measured."""
    best = None
    for rankdir in RANKDIRS:
        digraph = make(rankdir)
        scale = slide_scale(svg_size(backend.render(digraph.source, "svg")))
        if best is None or scale > best[0] * 1.05:  # LR, as the slides draw, unless TB is better
            best = (scale, rankdir, digraph)
    return best[1], best[2]


def local_marks(graph: Graph, values: dict, formulas: bool) -> tuple[dict, dict]:
    """Local derivative d user / d operand on every edge of the scalar nodes: numbers (and
    formula text when asked)."""
    from gradviz.core.autodiff import local_derivatives
    from gradviz.core.interpret import evaluate

    numbers, texts = {}, {}
    locals_: dict[tuple[Node, int], Node] = {}
    for node in graph.nodes:
        if node.is_leaf or node.shape != ():
            continue
        for i, d in enumerate(local_derivatives(node)):
            if d is not None:
                locals_[(node, i)] = d
    if not locals_:
        return numbers, texts
    evaluated = evaluate(list(locals_.values()), values=values) if values else {}
    for key, d in locals_.items():
        if values:
            numbers[key] = evaluated[d]
        if formulas:
            texts[key] = str(d)
    return numbers, texts


def check_marks(output: Node, env: Mapping, result=None) -> dict[Node, str]:
    """Nodes whose derivatives do not check out ("wrong") or sit on a kink ("kink"): each
    node's local derivative alone (VJP rule vs finite differences vs SymPy), and each variable's
    gradient (backprop vs finite differences)."""
    from gradviz.core.autodiff import backprop
    from gradviz.verify.node_checks import check_nodes
    from gradviz.verify.finite_differences import KINK, agrees, numeric_grad

    marks: dict[Node, str] = {}
    for row in check_nodes(output, env).rows:
        if row.status in ("wrong", "sympy wrong"):
            marks[row.node] = "wrong"
        elif row.status == KINK and marks.get(row.node) != "wrong":
            marks[row.node] = "kink"
    result = backprop(output, env) if result is None else result
    for var, fd in numeric_grad(output, env).items():
        verdict = agrees(result.grad(var), fd)
        if verdict is False:
            marks[var] = "wrong"
        elif verdict is None:
            marks.setdefault(var, "kink")
    return marks


def draw(output: Node | Sequence[Node], env: Mapping | None = None, *, view: str = "both",
         formulas: bool = False, check: bool = False, expand: bool = False,
         clusters: bool = True, collapse: bool = False, kernels: bool = False,
         title: str | None = None,
         output_name: str = "f", rankdir: str | None = None, legend: bool = True) -> Diagram:
    """Draw `output`'s graph (or the graph of several outputs, without values: a training
    step's `graph.outputs`). With `env` (values for every variable) the picture carries
    forward values (green), gradients (red) and local derivatives (blue) as `view` asks:
    "both", "forward", "gradients", or "backward-graph" (the nodes autodiff built).
    `formulas` writes each edge's local derivative as a formula; `check` marks nodes whose
    derivatives disagree (red) or sit on a kink (amber); `expand` draws sigmoid as its gates;
    `clusters`/`collapse` group (or fold) layers of a network by parameter names; `kernels`
    groups the nodes by the compiled CPU kernel that computes them instead. `rankdir` is "LR"
    (left to right) or "TB" (top to bottom); by default, one scalar circuit is drawn left to
    right as on the slides, and other graphs in the direction that fits a 16:9 slide best.
    `legend` writes what the colours mean under the picture. A training step (`TrainStep`) may
    be passed as it is: its graph's outputs are drawn."""
    from gradviz.core.autodiff import backprop

    if view not in VIEWS:
        raise GradvizError(f"unknown view {view!r} (choose from {', '.join(VIEWS)})")
    if rankdir is not None and rankdir not in RANKDIRS:
        raise GradvizError(f"rankdir must be LR or TB, got {rankdir!r}")
    if hasattr(output, "graph") and hasattr(output, "new_params"):  # a TrainStep
        output = output.graph.outputs

    def laid_out(graph, marks, **options) -> Diagram:
        def make(direction):
            return build(graph, marks, clusters=clusters, kernels=kernels, collapse=collapse,
                         title=title, rankdir=direction, legend=legend, **options)
        if rankdir is not None:
            return Diagram(make(rankdir))
        if len(graph.outputs) == 1 and graph.outputs[0].shape == () and all(
                n.shape == () for n in graph.nodes):
            return Diagram(make("LR"))  # a lecture circuit: left to right, as on the slides
        return Diagram(choose_rankdir(make)[1])

    if not isinstance(output, Node):  # several outputs, e.g. a training step's
        if env is not None:
            raise GradvizError("values and gradients are drawn for one scalar output; draw "
                               "several outputs without values")
        return laid_out(Graph(output), Marks(output_name=output_name))
    if expand:
        from gradviz.render.expand import expand_composites

        output = expand_composites(output)
    graph = Graph(output)
    marks = Marks(output_name=output_name)
    if env is None:
        if check or view == "backward-graph":
            raise GradvizError("this view needs values for the variables (--at)")
        return laid_out(graph, marks)
    result = backprop(output, env)
    if view == "backward-graph":
        return Diagram(_backward_graph(output, env, result, title, rankdir or "LR"))
    if view in ("both", "forward"):
        marks.values = result.values
    if view in ("both", "gradients"):
        marks.grads = result.grads
        marks.edges = result.edge_grads
        marks.local, marks.formulas = local_marks(graph, result.values, formulas)
    elif formulas:
        marks.formulas = local_marks(graph, {}, True)[1]
    if check:
        marks.checks = check_marks(output, env, result)
    return laid_out(graph, marks)


def _backward_graph(output: Node, env: Mapping, result, title: str | None, rankdir: str = "LR"):
    """The forward nodes (grey) and the nodes autodiff built (orange), each with its value;
    a dotted edge from each variable's gradient node to the variable."""
    import graphviz

    from gradviz.core.interpret import evaluate

    adj = result.adjoints
    forward = set(result.graph.nodes)
    targets = list(adj.of.values())
    everything = Graph([output, *targets])
    values = evaluate(targets, env, values=result.values)
    dot = graphviz.Digraph("gradviz", graph_attr={"rankdir": rankdir, "fontname": "Helvetica",
                                                  "bgcolor": "white", "labelloc": "b"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"color": "#57606a"})
    dot.attr(label=title or "backward graph: orange nodes compute the gradients", fontsize="12")
    namer = Namer(everything)
    for node in everything.nodes:
        family = "gradient" if node not in forward and not node.is_leaf else \
            ("const" if node.op == "const" else
             node.op if node.is_leaf else "shape")
        attrs = dict(FAMILIES[family])
        if node in forward and not node.is_leaf:
            attrs.update(fillcolor="#f6f8fa", color=MUTED, fontcolor=MUTED)
        if node.op in ("var", "param"):
            head = f"<B>{html.escape(node.name)}</B>"
        elif node.op == "const":
            head = f"<B>{html.escape(fmt(node.attrs['value']) if node.shape == () else 'const')}</B>"
        else:
            head = f"<B>{html.escape(gate_label(node) if node.shape == () else node.op)}</B>"
        rows = [head]
        if node in values and node.op != "const":
            rows.append(_font("= " + fmt(values[node]), "#1a7f37" if node in forward else "#bc4c00"))
        dot.node(node_id(everything, node), _table(rows), **attrs)
    for node in everything.nodes:
        for s in node.src:
            dot.edge(node_id(everything, s), node_id(everything, node))
    for var in result.graph.variables():
        g = adj.of.get(var)
        if g is not None:
            dot.edge(node_id(everything, g), node_id(everything, var), style="dotted",
                     color="#bc4c00", constraint="false",
                     label=f"d{namer(output)}/d{var.name}", fontcolor="#bc4c00", fontsize="10")
    return dot
