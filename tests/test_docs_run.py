"""Every `$ gradviz` block of README.md and docs/*.md runs and prints exactly the lines the page
shows (whole lines; `...` elides), with the exit status it shows (`tests/doc_commands.py`).

A page's commands run in order in one scratch directory (a later one may use a checkpoint an
earlier one wrote); running one example alone first runs the page's earlier ones.
"""
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_commands import (PAGES, ROOT, all_examples, examples, line_matches,  # noqa: E402
                          matches, run, scratch)

EXAMPLES = all_examples()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """{page: [scratch directory, how many of its examples have run there]}."""
    return {page: [tmp_path_factory.mktemp(re.sub(r"\W", "-", page)), 0] for page in PAGES}


def test_the_pages_have_their_commands():
    per_page = {page: len(examples(ROOT / page)) for page in PAGES}
    assert per_page["docs/verifying.md"] >= 20 and per_page["docs/tour.md"] >= 30
    assert per_page["README.md"] >= 1 and per_page["docs/training.md"] >= 5
    assert len(EXAMPLES) >= 90


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.page}:{e.line}" for e in EXAMPLES])
def test_command_prints_what_the_page_shows(example, pages, monkeypatch):
    where, done = pages[example.page]
    monkeypatch.chdir(scratch(where))
    earlier = examples(ROOT / example.page)
    for e in earlier[done:example.index]:  # what this one may depend on, when run alone
        run(e.command)
    pages[example.page][1] = example.index + 1
    code, got = run(example.command)
    assert code == example.exit_code and matches(example.shown, got), (
        f"{example.page} line {example.line}: {example.command}\nthe page shows "
        f"(exit {example.exit_code}):\n" + "\n".join(example.shown)
        + f"\n\nthe command printed (exit {code}):\n" + "\n".join(got))


def test_a_changed_number_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = next(e for e in EXAMPLES if e.command.startswith('gradviz grad "1/(1+exp'))
    code, got = run(example.command)
    assert matches(example.shown, got)
    changed = [line.replace("0.7310585786", "0.7310585787") for line in example.shown]
    assert changed != example.shown and not matches(changed, got)
    assert not matches(example.shown[:-1], got)  # a missing line fails too
    assert not matches(example.shown + ["extra"], got)  # and an extra one
    # an elided run of lines still pins the lines around it
    elided = example.shown[:3] + ["..."] + example.shown[-1:]
    assert matches(elided, got)
    assert not matches(elided[:3] + ["..."] + ["backprop, finite differences and SymPy agree!"],
                       got)


def test_ellipsis_stands_for_any_number_of_lines():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "d"], ["a", "d"])
    assert matches(["...", "d", "..."], ["a", "d", "e"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a b"], ["a b c"])  # whole lines, not substrings
    assert not matches(["f = 2"], ["f = 25"])
    assert not matches(["agree"], ["agree (symbolic routes not proved equal)"])
    assert not matches(["converged after 3"], ["not converged after 3"])


def test_ellipsis_inside_a_line_stands_for_any_text():
    assert line_matches("2 epoch(s) in ... s on numpy, ... samples/s",
                        "2 epoch(s) in 0.4 s on numpy, 16,995 samples/s")
    assert not line_matches("2 epoch(s) in ... s on numpy", "3 epoch(s) in 0.4 s on numpy")
    assert line_matches("a (b) [c] ...", "a (b) [c] d.e")  # the rest is literal, not a regex
    assert not line_matches("a.c", "abc")


def test_pipes_and_ls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, lines = run('gradviz grad "x*y" --at x=1,y=2 | tail -1')
    assert code == 0 and lines == ["backprop, finite differences and SymPy agree"]
    assert run('gradviz grad "x*y" --at x=1,y=2 | head -1')[1] == ["f = x*y   at x=1, y=2"]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("")
    (tmp_path / "d" / "a.txt").write_text("")
    assert run("ls d") == (0, ["a.txt", "b.txt"])
    with pytest.raises(ValueError, match="not run"):
        run("python -c 1")
    with pytest.raises(ValueError, match="tail -N or head -N"):
        run('gradviz grad "x" --at x=1 | sort')


def test_marks_skip_blocks_and_set_exit_codes(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- not run: needs a GPU -->\n```console\n$ gradviz bench --device cuda\n"
                    "```\n\n<!-- exit 1 -->\n```console\n$ gradviz a\nx\n$ gradviz b\n[exit 2]\n"
                    "```\n\n```\n$ ls run1\n```\n", encoding="utf-8")
    found = examples(page)
    assert [(e.command, e.shown, e.exit_code) for e in found] == [
        ("gradviz a", ["x"], 1), ("gradviz b", [], 2)]


def test_every_picture_the_tour_shows_is_committed_and_drawn_by_a_command():
    text = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\((img/[\w.-]+)\)", text))
    assert shown
    tour = [e for e in EXAMPLES if e.page == "docs/tour.md"]
    drawn = {m for e in tour for m in re.findall(r"docs/(img/[\w.-]+)", e.command)}
    assert shown <= drawn
    for picture in shown:
        assert (ROOT / "docs" / picture).is_file(), picture


def test_pictures_the_commands_write_are_not_the_committed_ones(pages):
    # commands run in scratch directories: docs/img of the checkout is never written
    assert all(not str(where).startswith(str(ROOT)) for where, _ in pages.values())
    assert os.path.isdir(ROOT / "docs" / "img")
