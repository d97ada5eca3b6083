"""Errors raised by the OpenShock client.

Every message is one sentence that can be shown to a Discord user as is; none contains a token.
"""

from __future__ import annotations


class OpenShockError(Exception):
    """Base of everything the OpenShock client raises on purpose."""


class TokenRejected(OpenShockError):
    """The server answered 401: the token is invalid, expired or revoked. Do not retry."""

    def __init__(self, detail: str | None = None) -> None:
        message = "OpenShock rejected the API token (it is invalid, expired or was revoked)."
        if detail:
            message = f"{message[:-1]}: {detail.rstrip('.')}."
        super().__init__(message)
        self.detail = detail


class OpenShockUnreachable(OpenShockError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The OpenShock server could not be reached ({reason}).")
        self.reason = reason


class OpenShockApiError(OpenShockError):
    """The server refused a request with an error other than 401 (usually problem+json)."""

    def __init__(
        self,
        status: int,
        problem_type: str | None = None,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        what = (title or detail or f"HTTP {status}").rstrip(".")
        suffix = f" [{problem_type}]" if problem_type else ""
        super().__init__(f"OpenShock refused the request: {what}{suffix}.")
        self.status = status
        self.problem_type = problem_type
        self.title = title
        self.detail = detail


class RateLimited(OpenShockApiError):
    """Still rate limited (HTTP 429) after the allowed number of waits."""


class HubNotConnected(OpenShockError):
    """An invocation was attempted while the hub connection was down (or it dropped meanwhile)."""

    def __init__(self, reason: str = "the connection to OpenShock is down") -> None:
        super().__init__(f"Not connected to OpenShock: {reason}.")


class HubConnectionLost(HubNotConnected):
    """The connection dropped after the invocation was sent and before its completion came back.

    Unlike its base (nothing was sent), the request reached the wire: it may or may not have been
    carried out. Nobody should assume either, nor resend it blindly.
    """

    def __init__(self) -> None:
        OpenShockError.__init__(
            self,
            "The connection to OpenShock dropped after the request was sent; "
            "it may or may not have been carried out.",
        )


class HubInvocationFailed(OpenShockError):
    """The hub answered an invocation with a completion error."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"OpenShock rejected {method}: {error.rstrip('.')}.")
        self.method = method
        self.error = error


class HubInvocationTimeout(OpenShockError):
    """The hub did not answer an invocation in time."""

    def __init__(self, method: str, timeout: float) -> None:
        super().__init__(f"OpenShock did not answer {method} within {timeout:g} seconds.")
        self.method = method
        self.timeout = timeout
