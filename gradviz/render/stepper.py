"""Backprop frames laid out once: nothing moves between frames.

The graph is laid out one time, with every row of every node and every edge label present at
its widest (every gradient as "grad so far ..."), and the caption with as many lines as the
longest one. Each frame's SVG is that picture with its own texts written into the text
elements, the rows a frame does not have yet left empty, and the highlighted node and its edges
recoloured. Positions, sizes and edges are the same in every frame.
"""
from __future__ import annotations

import html
import re

from gradviz.core.ir import Graph
from gradviz.render import backend
from gradviz.render.dot import HIGHLIGHT, Marks, Namer, _edge_label, _node_rows, build, \
    hidden_nodes, node_id

_GROUP = re.compile(r'(<g id="[^"]*" class="(node|edge)">\s*<title>([^<]*)</title>)(.*?)(</g>)',
                    re.S)
_TEXT = re.compile(r"(<text[^>]*>)(.*?)(</text>)", re.S)


def _plain(rows) -> list[str]:
    out = []
    for row in rows or []:
        out.append(html.unescape(re.sub(r"<[^>]*>", "", row)))
    return out


def _edge_rows(label: str | None) -> list[str]:
    if not label:
        return []
    cells = re.findall(r"<TD>(.*?)</TD>", label)
    return _plain(cells)


def _frame_texts(graph: Graph, marks: Marks, namer: Namer, hidden) -> dict[str, list[str]]:
    """Title of each SVG group (node id, or 'a->b') -> its text lines in this frame."""
    texts = {}
    for node in graph.nodes:
        if node in hidden:
            continue
        texts[node_id(graph, node)] = _plain(_node_rows(node, marks, namer))
        for i, s in enumerate(node.src):
            if s in hidden:
                continue
            label = _edge_label((node, i), marks) if s.shape == () else None
            key = f"{node_id(graph, s)}->{node_id(graph, node)}"
            texts.setdefault(key, _edge_rows(label))
    return texts


def _fill(group_body: str, lines: list[str]) -> str:
    index = iter(range(10_000))

    def one(match):
        k = next(index)
        text = html.escape(lines[k]) if k < len(lines) else ""
        return match.group(1) + text + match.group(3)

    return _TEXT.sub(one, group_body)


def _highlight(body: str, width: str) -> str:
    body = re.sub(r'stroke="#[0-9a-fA-F]{6}"', f'stroke="{HIGHLIGHT}"', body)
    body = re.sub(r'(<polygon fill=")#[0-9a-fA-F]{6}(" stroke="' + HIGHLIGHT + ')',
                  lambda m: m.group(1) + HIGHLIGHT + m.group(2), body) if width == "2" else body
    return re.sub(r'(<(?:path|ellipse|polygon)\b)(?![^>]*(?:stroke-width|fill="white"))',
                  rf'\1 stroke-width="{width}"', body, count=0 if width == "2" else 2)


def render_frames(graph: Graph, frames, title: str | None, legend: bool = True,
                  captions: bool = True) -> list[bytes]:
    """SVG bytes of every frame (`frames`: objects with `.marks` whose `.caption` is set), laid
    out once. With `captions=False` the caption lines are left empty (a page shows them)."""
    last = frames[-1].marks
    widest_caption = []
    lines_of = [f.marks.caption.split("\n") for f in frames]
    for k in range(max(len(lines) for lines in lines_of)):
        widest_caption.append(max((lines[k] for lines in lines_of if k < len(lines)), key=len))
    layout = Marks(values=last.values, grads=last.grads, final=set(), edges=last.edges,
                   local=last.local, formulas=last.formulas, output_name=last.output_name,
                   caption="\n".join(widest_caption))
    svg = backend.render(build(graph, layout, title=title, legend=legend).source, "svg").decode()
    namer = Namer(graph, last.output_name)
    hidden = hidden_nodes(graph)
    title_lines = title.split("\n") if title else []
    head_end = svg.find('<g id="node')
    head, rest = (svg, "") if head_end < 0 else (svg[:head_end], svg[head_end:])
    out = []
    for frame in frames:
        marks = frame.marks
        texts = _frame_texts(graph, marks, namer, hidden)
        lines = marks.caption.split("\n") if captions else []
        slots = title_lines + [lines[k] if k < len(lines) else ""
                               for k in range(len(widest_caption))]
        head_texts = _TEXT.findall(head)
        slots += [html.unescape(t[1]) for t in head_texts[len(slots):]]
        frame_head = _fill(head, slots)
        target = None if marks.highlight is None else node_id(graph, marks.highlight)

        def group(match):
            start, kind, name, body, end = match.groups()
            key = html.unescape(name)
            lines = texts.get(key, [])
            body = _fill(body, lines)
            if kind == "edge" and not any(lines):  # no label yet: no white box over the edge
                body = body.replace('fill="white" stroke="transparent"', 'fill="none" stroke="none"')
                body = re.sub(r'<polygon fill="white"[^>]*/>', "", body)
            if target is not None:
                if kind == "node" and key == target:
                    body = _highlight(body, "3")
                elif kind == "edge" and key.endswith("->" + target):
                    body = _highlight(body, "2")
            return start + body + end

        out.append((frame_head + _GROUP.sub(group, rest)).encode())
    return out
