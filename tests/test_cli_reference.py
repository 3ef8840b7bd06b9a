"""docs/cli.md is generated from the commands' help; it must match the code."""
from pathlib import Path

from gradviz.cli.reference import reference_markdown


def test_cli_reference_is_up_to_date():
    page = Path(__file__).parent.parent / "docs" / "cli.md"
    assert page.read_text() == reference_markdown(), (
        "docs/cli.md is stale: run python -m gradviz.cli.reference > docs/cli.md")
