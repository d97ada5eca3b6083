"""The errors the bot shows to people.

`UserError` means "tell the person this sentence": a refusal, a bad value, a missing link. The
tree's error handler turns it into an ephemeral reply and logs it without a traceback. Anything
else is unexpected: logged with a traceback, answered with a short apology.
"""

from __future__ import annotations


class UserError(Exception):
    """A clear, complete sentence meant for the person who ran the command."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
