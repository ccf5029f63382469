"""The one exception type users see.

Every error a user can cause (bad file, unsupported op, bad option) is raised as ``McucError``
with a one-line message that names what is wrong and where; the CLI prints it without a
traceback and exits non-zero. Anything else escaping is a compiler bug.
"""


class McucError(Exception):
    """A user-facing error: one line, names the file / node / op / opset involved."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class VerifyError(McucError):
    """The IR broke an invariant. After a pass this is a compiler bug; the message names the pass."""
