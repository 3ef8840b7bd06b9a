"""The one number formatter (`gradviz.core.text.format_number`) against every formatter it
replaced: each old one is kept here as a reference and compared on the same values."""
import math

import numpy as np
import pytest

from gradviz.core.text import format_number

VALUES = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 0.1, -0.1, 1 / 3, -2 / 3, 0.7310585786300049,
          -0.19661193324148185, 0.39322386648296376, 12345.6, -12345.6, 9999.99996, 10000.0,
          123456789.0, 12345678901.0, 1e15, 1.5e15, 1e20, -1e20, 1.2345e-5, 1e-7, 2.00001,
          0.8, 0.64, 0.512, 31.86410608, 1e-300, 5e-324, 1.7976931348623157e308,
          float("nan"), float("inf"), float("-inf")]


# The formatters that were merged, as they were written.
def old_text_format_number(value):  # core/text.py (nan/inf raised there)
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def old_dot_fmt(v):  # render/dot.py, scalars
    if not np.isfinite(v):
        return str(v)
    return old_text_format_number(float(f"{v:.4g}"))


def old_explain_num(value, digits):  # verify/explain.py
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}g}"


def old_node_checks_fmt(v):  # verify/node_checks.py, scalars
    return f"{v:.8g}" if math.isfinite(v) else str(v)


def old_descend_number(value, digits):  # cli/descend.py
    if not math.isfinite(value):
        return str(value)
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:.6g}"


def old_train_num(value):  # cli/train.py
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def old_grad_fmt(value):  # cli/grad.py and cli/check.py (byte copies)
    return f"{value:.10g}" if math.isfinite(value) else str(value)


@pytest.mark.parametrize("value", VALUES)
def test_same_text_as_every_old_formatter(value):
    if math.isfinite(value):
        assert format_number(value) == old_text_format_number(value)
    try:
        expected = old_dot_fmt(value)
    except OverflowError:  # rounded past the largest float: the old one crashed
        expected = repr(value)
    assert format_number(value, 4, rounded=True) == expected
    for digits in (2, 4, 10):
        assert format_number(value, digits) == old_explain_num(value, digits)
    assert format_number(value, 8, exact_integers=False) == old_node_checks_fmt(value)
    for digits in (None, 0, 2, 6):
        assert (format_number(value, 6, decimals=digits, exact_integers=False)
                == old_descend_number(value, digits))
    assert (format_number(value, 4, decimals=4, fixed_below=1e4, exact_integers=False)
            == old_train_num(value))
    assert format_number(value, 10, exact_integers=False) == old_grad_fmt(value)


@pytest.mark.parametrize("value", [v for v in VALUES if abs(v) < 1e30])
def test_numpy_scalars_and_zero_d_arrays_read_as_floats(value):
    for v in (np.float64(value), np.asarray(value), np.float32(value)):
        assert format_number(v, 4, rounded=True) == format_number(float(v), 4, rounded=True)
        assert format_number(v) == format_number(float(v))


@pytest.mark.parametrize("args, kwargs, value, text", [
    ((), {}, 2.0, "2"),                                     # whole numbers as integers
    ((), {}, 0.1, "0.1"),                                   # the shortest exact text
    ((), {}, 1.5e15, "1500000000000000.0"),                 # from 1e15 on: repr
    ((), {}, float("nan"), "nan"),
    ((4,), {"rounded": True}, 12345.6, "12350"),            # diagrams: rounded, no exponent
    ((4,), {"rounded": True}, 0.000123456, "0.0001235"),
    ((4,), {}, 12345.6, "1.235e+04"),                       # explain: significant digits
    ((4,), {}, 123456789.0, "123456789"),                   # ...but whole numbers in full
    ((8,), {"exact_integers": False}, 123456789.0, "1.2345679e+08"),
    ((10,), {"exact_integers": False}, -0.19661193324148185, "-0.1966119332"),
    ((6,), {"decimals": 2, "exact_integers": False}, 0.8, "0.80"),  # descend --digits 2
    ((6,), {"exact_integers": False}, 0.512, "0.512"),
    ((4,), {"decimals": 4, "fixed_below": 1e4, "exact_integers": False}, 0.5, "0.5000"),
    ((4,), {"decimals": 4, "fixed_below": 1e4, "exact_integers": False}, 12345.6, "1.235e+04"),
    ((4,), {"decimals": 4, "fixed_below": 1e4, "exact_integers": False}, float("inf"), "inf"),
    ((10,), {"exact_integers": False}, float("-inf"), "-inf"),
])
def test_cases(args, kwargs, value, text):
    assert format_number(value, *args, **kwargs) == text
