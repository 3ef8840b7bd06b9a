"""Every `$ gradviz` block of docs/verifying.md runs and prints exactly the lines the page shows
(whole lines; `...` elides), with the exit status it shows (`tests/doc_commands.py`)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_commands import ROOT, examples, matches, run  # noqa: E402

PAGES = ["docs/verifying.md"]
EXAMPLES = [e for page in PAGES for e in examples(ROOT / page)]


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pictures a command writes land here


def test_the_pages_have_their_commands():
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.page}:{e.line}" for e in EXAMPLES])
def test_command_prints_what_the_page_shows(example):
    code, got = run(example.command)
    assert code == example.exit_code, "\n".join(got)
    assert matches(example.shown, got), (
        f"{example.page} line {example.line}: {example.command}\nthe page shows:\n"
        + "\n".join(example.shown) + "\n\nthe command printed:\n" + "\n".join(got))


def test_a_changed_number_fails():
    example = next(e for e in EXAMPLES if e.command.startswith('gradviz grad "(x+y)*z"')
                   or e.command.startswith('gradviz grad "1/(1+exp'))
    code, got = run(example.command)
    assert matches(example.shown, got)
    changed = [line.replace("0.7310585786", "0.7310585787") for line in example.shown]
    assert changed != example.shown and not matches(changed, got)
    assert not matches(example.shown[:-1], got)  # a missing line fails too


def test_ellipsis_stands_for_any_number_of_lines():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "d"], ["a", "d"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a b"], ["a b c"])  # whole lines, not substrings
