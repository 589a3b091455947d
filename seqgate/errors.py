"""The one exception type the CLI turns into a one-line message and exit code 2.

Stages raise UserError for anything the user can fix (a missing file, a bad option, a checkpoint
that is not ours); everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line on stderr, exit code 2."""
