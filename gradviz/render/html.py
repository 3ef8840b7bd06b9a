"""A self-contained HTML page to step through pictures, fit for a lecture hall: frames inline
(one file, no network, no web fonts, ASCII-only controls), one caption, and the keys a presenter
clicker sends.

Keys: Right, Down, PageDown, Space, Enter, n: next; Left, Up, PageUp, Backspace, Shift+Space,
p: previous; Home/End: first/last. The URL carries `#step-N`, so a reload (or a link) shows
that step.
"""
from __future__ import annotations

import html


def stepper_page(title: str, frames: list[str], captions: list[list[str]]) -> str:
    """An HTML page showing one of `frames` (inline SVG or <img> markup) at a time, with its
    caption lines."""
    sections = []
    for k, (frame, lines) in enumerate(zip(frames, captions)):
        caption = "<br>".join(html.escape(line) for line in lines)
        sections.append(f'<section class="frame" id="frame-{k}"{"" if k == 0 else " hidden"}>'
                        f'<div class="picture">{frame}</div><p class="caption">{caption}</p>'
                        f"</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; margin: 1em 1.5em; color: #24292f; background: white; }}
h1 {{ font-size: 1.4em; margin: 0 0 .4em 0; }}
nav {{ display: flex; gap: .5em; align-items: center; margin-bottom: .6em; }}
button {{ font: inherit; font-size: 1.1em; padding: .25em .8em; }}
#position {{ font-size: 1.2em; min-width: 7em; text-align: center; }}
.hint {{ color: #57606a; }}
.picture svg, .picture img {{ max-width: 100%; max-height: 72vh; height: auto; }}
.caption {{ font-family: monospace; font-size: 1.25em; background: #f6f8fa; padding: .5em .7em;
           margin: .4em 0; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<nav><button id="first" title="first step (Home)">|&lt; first</button>
<button id="prev" title="previous step (Left, PageUp)">&lt; previous</button>
<span id="position"></span>
<button id="next" title="next step (Right, PageDown, Space)">next &gt;</button>
<button id="last" title="last step (End)">last &gt;|</button>
<span class="hint">keys: arrows, PageUp/PageDown, Space, Home/End</span></nav>
{"".join(sections)}
<script>
const frames = Array.from(document.querySelectorAll('.frame'));
let current = 0;
function fromHash() {{
  const m = /^#step-(\\d+)$/.exec(location.hash);
  return m ? parseInt(m[1], 10) : 0;
}}
function show(k) {{
  current = Math.max(0, Math.min(frames.length - 1, k));
  frames.forEach((f, i) => f.hidden = i !== current);
  document.getElementById('position').textContent =
    'step ' + current + ' / ' + (frames.length - 1);
  const hash = '#step-' + current;
  if (location.hash !== hash) {{
    try {{ history.replaceState(null, '', hash); }} catch (e) {{ /* sandboxed frames */ }}
  }}
}}
document.getElementById('first').onclick = () => show(0);
document.getElementById('prev').onclick = () => show(current - 1);
document.getElementById('next').onclick = () => show(current + 1);
document.getElementById('last').onclick = () => show(frames.length - 1);
const NEXT = ['ArrowRight', 'ArrowDown', 'PageDown', ' ', 'Spacebar', 'Enter', 'n'];
const PREV = ['ArrowLeft', 'ArrowUp', 'PageUp', 'Backspace', 'p'];
document.addEventListener('keydown', e => {{
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  let to = null;
  if ((e.key === ' ' || e.key === 'Spacebar') && e.shiftKey) to = current - 1;
  else if (NEXT.includes(e.key)) to = current + 1;
  else if (PREV.includes(e.key)) to = current - 1;
  else if (e.key === 'Home') to = 0;
  else if (e.key === 'End') to = frames.length - 1;
  if (to === null) return;
  e.preventDefault();
  show(to);
}});
window.addEventListener('hashchange', () => show(fromHash()));
show(fromHash());
</script>
</body></html>
"""
