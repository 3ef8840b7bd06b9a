"""The backprop stepper for a lecture hall: every frame shares one layout, the page is one
offline file with ASCII controls and one caption, and (in a real headless Chromium, when one is
installed) clicker keys step, the URL carries #step-N and a reload keeps the step."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import gradviz as gv
from gradviz.render import steps

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
AT = {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("steps")
    written = steps(gv.parse(NEURON), AT, out, title=NEURON)
    return out, written


def _geometry(svg: str) -> list[str]:
    """Every coordinate of the picture, without texts and colours (nor the white boxes under
    edge labels, left out while an edge has no label yet)."""
    svg = re.sub(r'<polygon fill="white"[^>]*/>', "", svg)
    return re.findall(r'(?<![-\w])(?:cx|cy|rx|ry|x|y|points|d|width|height|viewBox)="([^"]*)"', svg)


def test_every_frame_shares_one_layout(pages):
    out, written = pages
    frames = [p for p in written if p.endswith(".svg")]
    assert len(frames) == 11
    first = _geometry(open(frames[0]).read())
    for path in frames[1:]:
        assert _geometry(open(path).read()) == first, path
    texts = [re.findall(r"<text[^>]*>([^<]*)</text>", open(p).read()) for p in frames]
    assert texts[0] != texts[5] != texts[-1]
    assert "grad 1" not in texts[0] and "grad 1" in texts[-1]
    assert any(t.startswith("step 5 of 10: df/d") for t in texts[5])
    assert 'stroke="#8250df"' in open(frames[5]).read()  # the step's node, highlighted
    assert 'stroke="#8250df"' not in open(frames[0]).read()


def test_page_is_one_offline_file_with_ascii_controls_and_one_caption(pages):
    out, _ = pages
    page = (out / "index.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert "@font-face" not in page and "<link" not in page
    nav = page[page.index("<nav>"):page.index("</nav>")]
    assert nav.isascii() and "|&lt; first" in nav and "last &gt;|" in nav
    assert "&#x23" not in page and "&#x25" not in page
    for key in ("PageDown", "PageUp", "' '", "Home", "End", "#step-"):
        assert key in page, key
    section = page[page.index('id="frame-5"'):page.index('id="frame-6"')]
    assert section.count("df/dd += df/dg") == 1  # the caption once, under the picture


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)

PROBE = """<script>
const results = [];
const state = () => {
  const shown = frames.findIndex(f => !f.hidden);
  const svg = frames[shown].querySelector('svg').textContent.length;
  return [current, shown, location.hash, document.getElementById('position').textContent,
          svg].join('|');
};
const press = (key, shift) => document.dispatchEvent(
  new KeyboardEvent('keydown', {key: key, shiftKey: !!shift, bubbles: true, cancelable: true}));
results.push(state());
for (const [key, shift] of [['PageDown'], [' '], ['ArrowRight'], ['PageUp'], [' ', true],
                            ['End'], ['PageDown'], ['Home'], ['ArrowLeft']]) {
  press(key, shift);
  results.push(key + (shift ? '+shift' : '') + '=' + state());
}
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = results.join('\\n');
document.body.appendChild(pre);
</script>
"""


def _dom(url: str) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_keys_and_url_in_headless_chromium(pages):
    out, _ = pages
    page = (out / "index.html").read_text()
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _dom(probe.as_uri() + "#step-3")
    lines = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).splitlines()
    steps_seen = [int(line.split("=")[-1].split("|")[0]) if "=" in line else
                  int(line.split("|")[0]) for line in lines]
    # reload keeps the step: the page opened at #step-3 shows step 3
    assert lines[0].startswith("3|3|#step-3|step 3 / 10"), lines[0]
    assert steps_seen == [3, 4, 5, 6, 5, 4, 10, 10, 0, 0], lines
    for line in lines[1:]:
        k = int(line.split("=")[-1].split("|")[0])
        assert f"|#step-{k}|step {k} / 10|" in line, line
    sizes = {line.split("|")[-1] for line in lines}
    assert len(sizes) > 2  # the SVG shown changes with the step
    # a plain reload of a #step-7 link shows step 7
    plain = _dom((out / "index.html").as_uri() + "#step-7")
    assert 'id="position">step 7 / 10<' in plain
    assert re.search(r'<section class="frame" id="frame-7">', plain)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_screenshot_at_projector_size(pages, tmp_path):
    from PIL import Image

    out, _ = pages
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1920,1080",
                    (out / "index.html").as_uri() + "#step-5"],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1920, 1080)
    pixels = getattr(image, "get_flattened_data", image.getdata)()   # (getdata: older Pillow)
    purple = sum(1 for p in pixels if p == (0x82, 0x50, 0xdf))
    assert purple > 50  # the highlighted node of step 5 is drawn
