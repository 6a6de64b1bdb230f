"""Exceptions whose message is meant for the user: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing data, unknown name)."""
