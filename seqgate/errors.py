"""The one exception type the CLI turns into a one-line message and exit code 2.

Stages raise UserError for anything the user can fix (a missing file, a bad option, a checkpoint
that is not ours); everything else is a bug and keeps its traceback.
"""

import math


class UserError(Exception):
    """A problem with the user's input, reported as one line on stderr, exit code 2."""


def is_number(value, whole: bool = False) -> bool:
    """Whether a value read from a file (JSON, a checkpoint) is a number (whole: an int) as seqgate
    writes them: Python counts True as an int, but a file that says true where a count belongs is
    not one of ours."""
    return isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """is_number, and neither infinite nor NaN."""
    return is_number(value) and math.isfinite(value)
