"""A self-contained HTML page to step through pictures: frames inline, buttons and arrow keys,
no network."""
from __future__ import annotations

import html


def stepper_page(title: str, frames: list[str], captions: list[list[str]]) -> str:
    """An HTML page showing one of `frames` (inline SVG or <img> markup) at a time, with its
    caption lines; Left/Right (or the buttons) step, Home/End jump."""
    sections = []
    for k, (frame, lines) in enumerate(zip(frames, captions)):
        caption = "<br>".join(html.escape(line) for line in lines)
        sections.append(f'<section class="frame" id="frame-{k}"{"" if k == 0 else " hidden"}>'
                        f'<div class="picture">{frame}</div><p class="caption">{caption}</p>'
                        f"</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #24292f; }}
nav {{ display: flex; gap: .5em; align-items: center; margin-bottom: 1em; }}
button {{ font-size: 1em; padding: .3em .8em; }}
.picture svg, .picture img {{ max-width: 100%; height: auto; }}
.caption {{ font-family: Menlo, Consolas, monospace; background: #f6f8fa; padding: .6em; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<nav><button id="first">&#x23EE; first</button><button id="prev">&#x25C0; previous</button>
<span id="position"></span>
<button id="next">next &#x25B6;</button><button id="last">last &#x23ED;</button>
<span>(or the arrow keys)</span></nav>
{"".join(sections)}
<script>
const frames = Array.from(document.querySelectorAll('.frame'));
let current = 0;
function show(k) {{
  current = Math.max(0, Math.min(frames.length - 1, k));
  frames.forEach((f, i) => f.hidden = i !== current);
  document.getElementById('position').textContent = 'step ' + current + ' / ' + (frames.length - 1);
}}
document.getElementById('first').onclick = () => show(0);
document.getElementById('prev').onclick = () => show(current - 1);
document.getElementById('next').onclick = () => show(current + 1);
document.getElementById('last').onclick = () => show(frames.length - 1);
document.addEventListener('keydown', e => {{
  if (e.key === 'ArrowRight' || e.key === ' ') show(current + 1);
  else if (e.key === 'ArrowLeft') show(current - 1);
  else if (e.key === 'Home') show(0);
  else if (e.key === 'End') show(frames.length - 1);
}});
show(0);
</script>
</body></html>
"""
