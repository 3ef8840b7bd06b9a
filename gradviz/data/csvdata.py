"""Reading a CSV file of numeric features and one target column.

The first row is the header. Every column but the target must hold numbers. The target column may
hold numbers or text labels; text labels (and, by default, a small set of whole numbers) make a
classification problem whose classes are the sorted distinct labels.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradviz.errors import GradvizError

#: A numeric target with at most this many distinct whole-number values is read as class labels
#: (unless the caller says ``task="regression"``).
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class CsvTable:
    """A parsed CSV file: raw float64 features, the target (int64 class indices or float64
    values), and the names that go with them."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target: str
    task: str
    class_names: tuple[str, ...]


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_csv(path: str | os.PathLike, target: str | None, task: str | None = None) -> CsvTable:
    """Parse ``path`` (``.csv`` or ``.csv.gz``) with ``target`` as the column to predict.

    ``task`` is ``"classification"``, ``"regression"`` or None (decide from the target: text
    labels, or at most `MAX_AUTO_CLASSES` distinct whole numbers, mean classification). Errors
    (missing file, no header, unknown or missing target, ragged rows, a non-numeric or empty
    feature cell) raise `GradvizError` naming the file, line and column.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise GradvizError(f"no such file: {path}")
    if not path.is_file():
        raise GradvizError(f"{path} is not a file")
    if task not in (None, "classification", "regression"):
        raise GradvizError(f"unknown task {task!r} (choose classification or regression)")
    header, rows = _read_rows(path)
    _check_header(path, header, rows, target)
    t_col = header.index(target)
    feature_cols = [i for i in range(len(header)) if i != t_col]
    X, labels = _parse_rows(path, header, rows, feature_cols, t_col)
    numeric = [_number(s) for s in labels]
    if task is None:
        task = _guess_task(numeric)
    if task == "regression":
        y, class_names = _regression_target(path, rows, labels, numeric, target), ()
    else:
        y, class_names = _class_indices(labels, numeric)
        if len(class_names) < 2:
            raise GradvizError(f"{path}: target column {target!r} holds only one class "
                               f"({class_names[0]!r}): there is nothing to tell apart")
    return CsvTable(X, y, tuple(header[c] for c in feature_cols), target, task, class_names)


def _read_rows(path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """The header (stripped cells; None for a file with no non-blank line) and the data rows as
    (line number, cells), blank lines skipped."""
    reader = None
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, strict=True)
            rows = []
            header = None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                rows.append((reader.line_num, row))
    except UnicodeDecodeError:
        raise GradvizError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        raise GradvizError(f"{path}: malformed CSV near line {line} ({exc})") from None
    except (OSError, EOFError) as exc:
        raise GradvizError(f"cannot read {path}: {exc}") from None
    return header, rows


def _check_header(path: Path, header: list[str] | None, rows: list, target: str | None) -> None:
    """A header with named, distinct columns, ``target`` among them, at least one feature column
    and at least one data row after it."""
    if header is None:
        raise GradvizError(f"{path}: empty file (expected a header row)")
    for i, name in enumerate(header):
        if not name:
            raise GradvizError(f"{path}: column {i + 1} of the header has no name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise GradvizError(f"{path}: duplicate column name(s) in header: {', '.join(dupes)}")
    columns = ", ".join(header)
    if target is None:
        raise GradvizError(f"{path}: say which column to predict with --target (columns: {columns})")
    if target not in header:
        raise GradvizError(f"{path}: no column named {target!r} (columns: {columns})")
    if len(header) < 2:
        raise GradvizError(f"{path}: needs at least one feature column besides {target!r}")
    if not rows:
        raise GradvizError(f"{path}: no data rows after the header")


def _parse_rows(path: Path, header: list[str], rows: list[tuple[int, list[str]]],
                feature_cols: list[int], t_col: int) -> tuple[np.ndarray, list[str]]:
    """The feature matrix (float64, one row per data row) and the target cells as text."""
    X = np.empty((len(rows), len(feature_cols)), dtype=np.float64)
    labels: list[str] = []
    for r, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise GradvizError(
                f"{path}: line {line} has {len(row)} cells but the header has {len(header)}")
        for j, c in enumerate(feature_cols):
            cell = row[c].strip()
            v = _number(cell)
            if v is None:
                where = f"{path}: line {line}, column {header[c]!r}"
                raise GradvizError(f"{where} is empty" if not cell
                                   else f"{where}: {cell!r} is not a finite number")
            X[r, j] = v
        label = row[t_col].strip()
        if not label:
            raise GradvizError(f"{path}: line {line}, target column {header[t_col]!r} is empty")
        labels.append(label)
    return X, labels


def _guess_task(numeric: list[float | None]) -> str:
    """Classification for text labels or at most `MAX_AUTO_CLASSES` distinct whole numbers,
    regression otherwise (``numeric``: each label as a number, None where it is not one)."""
    if not all(v is not None for v in numeric):
        return "classification"
    whole = all(float(v).is_integer() for v in numeric)
    return "classification" if whole and len(set(numeric)) <= MAX_AUTO_CLASSES else "regression"


def _regression_target(path: Path, rows: list[tuple[int, list[str]]], labels: list[str],
                       numeric: list[float | None], target: str) -> np.ndarray:
    """The target values as float64; every label must be a finite number."""
    if not all(v is not None for v in numeric):
        bad = next(i for i, v in enumerate(numeric) if v is None)
        raise GradvizError(
            f"{path}: line {rows[bad][0]}, column {target!r}: {labels[bad]!r} is not a "
            f"finite number (a regression target must be numeric)")
    return np.asarray(numeric, dtype=np.float64)


def _class_indices(labels: list[str], numeric: list[float | None]
                   ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices (int64) and class names: the sorted distinct labels, compared as numbers
    when every label is one (names then written with ``:g``), as text otherwise."""
    if all(v is not None for v in numeric):
        values = sorted(set(numeric))
        index = {v: i for i, v in enumerate(values)}
        return (np.asarray([index[v] for v in numeric], dtype=np.int64),
                tuple(f"{v:g}" for v in values))
    names = sorted(set(labels))
    index = {v: i for i, v in enumerate(names)}
    return np.asarray([index[v] for v in labels], dtype=np.int64), tuple(names)
