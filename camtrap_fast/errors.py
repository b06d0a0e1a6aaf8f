"""The one error type that means "the user gave us something we cannot use".

The CLI turns a UserError into a one-line message and exit code 2; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, described in one line that names the file, shard or key."""

    exit_code = 2
