"""One error base class, each error also a builtin so callers can catch what they know."""

from __future__ import annotations


class CredrotError(Exception):
    """Base of every error credrot raises on purpose. Messages are one line, never secrets."""


class LockTimeout(CredrotError, TimeoutError):
    """The pool lock could not be taken in time."""


class ReadOnlyHome(CredrotError, PermissionError):
    """The tool home cannot be written (for example a read-only container mount)."""


class AccountNotFound(CredrotError, LookupError):
    """No account with that number exists."""


class InvalidCredential(CredrotError, ValueError):
    """A credential file does not have the shape the tool requires."""


class DuplicateAccount(CredrotError, ValueError):
    """The credential is already in the pool."""


class ConfigError(CredrotError, ValueError):
    """A tool description or option is not valid."""


class ToolNotFound(CredrotError, FileNotFoundError):
    """The tool's executable is not installed or not on PATH."""


#: What ``Wrapper.call`` turns into a failed result instead of raising: a full disk, a
#: file it cannot read or write (``OSError``), a number out of range (``OverflowError``),
#: a value a tool or a file got wrong (``ValueError``).
NEVER_RAISED: tuple[type[BaseException], ...] = (OSError, OverflowError, ValueError)


def call_failure(
    exc: BaseException, home: object, prefix: str = "the call could not go on: "
) -> str:
    """One line for a call stopped by ``exc``: the file (else the home) and the reason."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{prefix}{exc.filename or home}: {reason}"
    return f"{prefix}{exc}"
