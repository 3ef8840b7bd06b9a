"""`gradviz data fetch NAME` and `gradviz data list`: public data sets, downloaded and verified."""
from __future__ import annotations

import click


@click.group("data")
def data() -> None:
    """Fetch public data sets (verified by SHA-256) and list what is in the data directory
    ($GRADVIZ_DATA, else ~/.cache/gradviz/data). A fetched set trains as `--data mnist`."""


@data.command("fetch")
@click.argument("name", metavar="NAME")
@click.option("--mirror", metavar="URL",
              help="Fetch the same file names from this base URL (default: $GRADVIZ_DATA_MIRROR, "
                   "else the canonical servers); the checksums still apply.")
@click.option("--dir", "root", metavar="DIR",
              help="Data directory to fetch into (default: $GRADVIZ_DATA, else "
                   "~/.cache/gradviz/data).")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Retries of a broken transfer (each resumes the .part file).")
def fetch(name: str, mirror: str | None, root: str | None, retries: int) -> None:
    """Download data set NAME (mnist, fashion-mnist, cifar10) with a progress bar on stderr,
    check every file's size and SHA-256, and move it into place only when it matches.

    \b
    Example:
      gradviz data fetch mnist
      gradviz data fetch cifar10
      gradviz data fetch fashion-mnist --mirror https://example.org/fashion/
    """
    from gradviz.data.fetch import ProgressBar, dataset_dir, fetch_dataset

    fetched = fetch_dataset(name, root=root, mirror=mirror, retries=retries,
                            progress=ProgressBar())
    for f in fetched:
        click.echo(f"{f.name}  {f.status}, SHA-256 verified")
    click.echo(f"{name} is in {dataset_dir(name.strip().lower(), root)}")


@data.command("list")
@click.option("--dir", "root", metavar="DIR", help="Data directory (default: $GRADVIZ_DATA, else "
                                                   "~/.cache/gradviz/data).")
def list_(root: str | None) -> None:
    """Show which data sets are in the data directory, and the command that fetches the others."""
    from gradviz.data.fetch import list_report

    click.echo(list_report(root))
