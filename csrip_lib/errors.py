"""One exception type for user-facing errors: bad paths, bad data, mismatched checkpoints."""


class CSRIPError(Exception):
    """A problem the user can fix; the message says what was expected and what to do."""
