"""One exception type for user-facing errors: bad paths, bad data, mismatched checkpoints."""
from __future__ import annotations

import errno
import os


class CSRIPError(Exception):
    """A problem the user can fix; the message says what was expected and what to do."""


def describe_os_error(e: OSError) -> str:
    """One line for a file-system error: what went wrong and on which path(s), no traceback.

    The one place that words OSErrors for users: `csrip` turns any OSError that reaches it into
    "csrip <command>: error: <this>", and data listing uses it for the files it skips."""
    what = e.strerror or (errno.errorcode.get(e.errno, "") if e.errno else "") or type(e).__name__
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else f"{what} ({e})" if str(e) != what else what
