"""Input checks every module shares: one-line errors naming the value and what is accepted, raised before any work.

Python counts `True` as the int 1 and numpy / torch scalars are not `int` or `float`: these helpers say once what
an int and a number are here. The two files copied beside the weights (`pipeline_fashion_ddpm.py`,
`condition_encoder.py`) keep their own copies: they must load without this package.
"""

from __future__ import annotations

import argparse
import math
import numbers


def is_int(value) -> bool:
    """An int that is not a bool (YAML `yes`, a checkbox's True)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A real number that is not a bool: int, float, or a numpy / torch scalar."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    return is_number(value) and math.isfinite(value)


def plain_number(value):
    """A numpy / torch scalar as the Python int or float it holds (for JSON and messages); anything else as it is."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value


def check_int(value, name: str, low: int = 1, error: type[Exception] = ValueError) -> int:
    """`value` if it is an int >= `low`; otherwise raises `error` naming `name` and the value."""
    if not is_int(value) or value < low:
        raise error(f"{name} must be an int >= {low}, got {value!r}")
    return value


def comma_separated(kind: type, noun: str, example: str):
    """An argparse type: a comma-separated list of `kind` values (e.g. "0,1,2"); a value that is not one is a one-line
    error naming the text and an `example` of what is accepted."""
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be comma-separated {noun} such as {example}, got {text!r}") from None
    return parse
