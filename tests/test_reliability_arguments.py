"""Numeric options refuse non-finite and out-of-range values before any work (nnunet_stroke/arguments.py)."""
import argparse

import pytest

from nnunet_stroke.arguments import non_negative_float, positive_float, positive_int


@pytest.mark.parametrize("parse, text", [
    (positive_int, "0"), (positive_int, "-3"), (positive_int, "2.5"), (positive_int, "nan"),
    (positive_float, "nan"), (positive_float, "inf"), (positive_float, "-inf"), (positive_float, "0"),
    (positive_float, "-1e-9"), (positive_float, "ten"), (non_negative_float, "-0.1"), (non_negative_float, "nan"),
])
def test_bad_numbers_are_refused(parse, text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        parse(text)


@pytest.mark.parametrize("parse, text, value", [
    (positive_int, "3", 3), (positive_float, "0.25", 0.25), (positive_float, "1e3", 1000.0),
    (non_negative_float, "0", 0.0),
])
def test_good_numbers_pass(parse, text, value):
    assert parse(text) == value
