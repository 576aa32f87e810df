"""The command line's own error: a user-facing message, printed as one line with exit status 2."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
