"""Step-by-step backprop: one frame per node, in reverse topological order.

Frame 0 shows the forward values. Each later frame takes one node whose gradient is complete,
multiplies it by the local derivative of each operand edge, and adds the product to the
operand's running sum: the node is highlighted, the contributions are written on the edges, the
step's chain-rule equations are the caption, and gradients that are complete are kept.
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from gradviz.errors import GradvizError
from gradviz.core.ir import Graph, Node
from gradviz.render import backend
from gradviz.render.dot import Marks, Namer, build, fmt
from gradviz.render.html import stepper_page

FRAME_FORMATS = ("svg", "png")
#: The most frames `steps` draws (one per node with operands, plus 3): each frame lays out the
#: whole graph, so the time grows with frames x nodes (about 0.1 s a frame at 300 nodes). A
#: 150-term sum needs 302 frames; draw it whole with `gradviz draw` instead, or raise the
#: bound with `gradviz steps --max-frames`.
MAX_FRAMES = 100


@dataclass
class Frame:
    """One picture of the backward pass: its marks and its caption lines."""

    marks: Marks
    lines: list[str]


def backprop_frames(output: Node, env: Mapping, output_name: str = "f") -> tuple[Graph, list[Frame]]:
    """The frames of backprop through `output`'s graph at the point `env`."""
    from gradviz.core.autodiff import backprop
    from gradviz.render.diagram import local_marks

    if output.shape != ():
        raise GradvizError("step-by-step frames are drawn for scalar outputs")
    result = backprop(output, env)
    graph = result.graph
    namer = Namer(graph, output_name)
    local, _ = local_marks(graph, result.values, False)
    edges = result.edge_grads
    remaining: dict[Node, int] = {}
    for (user, i) in edges:
        operand = user.src[i]
        remaining[operand] = remaining.get(operand, 0) + 1

    f = _d(namer(output))
    frames = [Frame(Marks(values=result.values, output_name=output_name),
                    ["forward pass: every node's value"])]
    running: dict[Node, float] = {output: 1.0} if output in result.grads else {}
    final: set[Node] = set(running)
    shown_edges: dict = {}
    shown_local: dict = {}
    frames.append(Frame(_marks(result, running, final, shown_edges, shown_local, output, output_name),
                        [f"d{f}/d{f} = 1: the backward pass starts at the output"]))
    for node in reversed(graph.nodes):
        keys = [(node, i) for i in range(len(node.src)) if (node, i) in edges]
        if not keys:
            continue
        g = running[node]
        lines = []
        for key in keys:
            operand = node.src[key[1]]
            contribution = edges[key]
            running[operand] = running.get(operand, 0.0) + contribution
            remaining[operand] -= 1
            if remaining[operand] == 0:
                final.add(operand)
            shown_edges[key] = contribution
            if key in local:
                shown_local[key] = local[key]
            a, n = _d(namer(operand)), _d(namer(node))
            lines.append(f"d{f}/d{a} += d{f}/d{n} * d{n}/d{a} = {fmt(g)} * "
                         f"{fmt(local.get(key, float('nan')))} = {fmt(contribution)}")
        frames.append(Frame(_marks(result, running, final, shown_edges, shown_local, node,
                                   output_name), lines))
    grads = ", ".join(f"d{f}/d{v.name} = {fmt(result.grad(v))}" for v in graph.variables())
    frames.append(Frame(_marks(result, running, final, shown_edges, shown_local, None, output_name),
                        [f"done: {grads}"]))
    return graph, frames


def _d(name: str) -> str:
    """A name as it follows a `d`: `x`, but `(x * y)`."""
    return name if name.replace("_", "").isalnum() else f"({name})"


def _marks(result, running, final, edges, local, highlight, output_name) -> Marks:
    return Marks(values=result.values, grads=dict(running), final=set(final), edges=dict(edges),
                 local=dict(local), highlight=highlight, output_name=output_name)


def steps(output: Node, env: Mapping, out_dir: str | os.PathLike, fmt: str = "svg",
          output_name: str = "f", title: str | None = None,
          max_frames: int = MAX_FRAMES) -> list[str]:
    """Write `out_dir/step-000.svg`, ... and `out_dir/index.html` (self-contained: the frames
    inline, arrow keys and buttons to step). Returns the paths written (a list, `StepPaths`,
    that shows the stepper inline in a notebook). A graph that needs more
    than `max_frames` frames is refused before any is drawn."""
    from gradviz.files import write_atomic

    if fmt not in FRAME_FORMATS:
        raise GradvizError(f"frames can be {' or '.join(FRAME_FORMATS)}, not {fmt!r}")
    if output.shape == ():
        needed = sum(1 for n in Graph(output).nodes if n.src) + 3
        if needed > max_frames:
            raise GradvizError(f"this graph needs {needed} frames, more than the limit of "
                               f"{max_frames} (each frame lays out the whole graph): draw it "
                               "whole with `gradviz draw`, or raise --max-frames")
    from gradviz.render.stepper import render_frames

    graph, frames = backprop_frames(output, env, output_name)
    for k, frame in enumerate(frames):
        frame.marks.caption = f"step {k} of {len(frames) - 1}: " + "\n".join(frame.lines)
    if fmt == "svg":  # laid out once: nothing moves between frames
        rendered = render_frames(graph, frames, title)
        shown = render_frames(graph, frames, title, captions=False)  # the page has the caption
    else:
        rendered = [backend.render(build(graph, f.marks, title=title).source, fmt)
                    for f in frames]
        shown = rendered
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GradvizError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, data in enumerate(rendered):
        path = out / f"step-{k:03d}.{fmt}"
        write_atomic(str(path), data)
        written.append(str(path))
    for stale in out.glob(f"step-*.{fmt}"):
        match = re.fullmatch(r"step-(\d+)\." + fmt, stale.name)
        if match and int(match.group(1)) >= len(rendered):
            stale.unlink()
    embedded = [_embed(data, fmt) for data in shown]
    page = stepper_page(title or "backprop, step by step", embedded,
                        [frame.lines for frame in frames])
    index = out / "index.html"
    write_atomic(str(index), page)
    written.append(str(index))
    from gradviz.notebook import StepPaths  # a list that shows the stepper in a notebook

    return StepPaths(written, page)


def _embed(data: bytes, fmt: str) -> str:
    if fmt == "svg":
        text = data.decode()
        return text[text.find("<svg"):]
    return f'<img alt="frame" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
