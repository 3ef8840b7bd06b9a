"""Errors gradviz raises on purpose.

Every `GradvizError` is a problem with what the user gave (an expression, a value, a file, a
flag). The CLI prints its message as one line and exits with code 2; the Python API lets it
propagate.
"""


class GradvizError(Exception):
    """Bad input: the message names the problem in one line."""

    exit_code = 2


class ParseError(GradvizError):
    """An expression string that gradviz will not accept; `column` is 1-based (or None)."""

    def __init__(self, message: str, column: int | None = None, source: str | None = None):
        self.reason = message
        self.column = column
        self.source = source
        where = f" at column {column}" if column is not None else ""
        super().__init__(f"{message}{where}")


class ShapeError(GradvizError):
    """Operands whose shapes (or dtypes) an op cannot take."""


class MissingValueError(GradvizError):
    """A variable that was not given a value."""


class EvaluationError(GradvizError):
    """An expression that is not defined at the given point (log of a negative, 0/0, ...)."""
