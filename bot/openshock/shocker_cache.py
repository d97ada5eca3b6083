"""The account's shocker lists (and its API token's scope), read over REST and kept fresh while
the hub is connected.

The hub says when the lists may have changed (``Welcome`` after a reconnect, ``DeviceUpdate``)
but not what changed, so the connection asks for a refresh then; the refresh runs in the
background, retrying until it succeeds, and requests made meanwhile coalesce into one more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.openshock.errors import OpenShockApiError, OpenShockError, TokenRejected
from bot.openshock.models import HubEvent, ShockerDirectory, ShockersRefreshed, TokenInfo
from bot.openshock.rest import OpenShockRest
from bot.openshock.timings import HubTimings

__all__ = ["ShockerCache"]

_log = logging.getLogger(__name__)


class ShockerCache:
    """The own and shared shocker lists of one account, with their background refresh.

    ``connected`` says whether a failed refresh is worth retrying (while disconnected it is
    not: the next ``Welcome`` asks again); ``alive`` whether a 401 seen by a caller should be
    confirmed by the background refresh; ``on_token_revoked`` is called by the background
    refresh on a 401 (the token is dead: the connection ends).
    """

    def __init__(
        self,
        rest: OpenShockRest,
        *,
        name: str,
        timings: HubTimings,
        publish: Callable[[HubEvent], Awaitable[None]],
        connected: Callable[[], bool],
        alive: Callable[[], bool],
        on_token_revoked: Callable[[], Awaitable[None]],
    ) -> None:
        self._rest = rest
        self._name = name
        self._timings = timings
        self._publish = publish
        self._connected = connected
        self._alive = alive
        self._on_token_revoked = on_token_revoked
        self._directory: ShockerDirectory | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    @property
    def directory(self) -> ShockerDirectory | None:
        """The lists from the last successful refresh (None before the first)."""
        return self._directory

    async def refresh(self) -> ShockerDirectory:
        """Re-read the own and shared shocker lists now (raises the REST client's errors)."""
        try:
            own, shared, token = await asyncio.gather(
                self._rest.get_own_shockers(),
                self._rest.get_shared_shockers(),
                self._token_info(),
            )
        except TokenRejected:
            if asyncio.current_task() is not self._task and self._alive():
                # Let the background refresh see it too: it ends the connection.
                self.request_refresh()
            raise
        self._directory = ShockerDirectory(own=own, shared=shared, token=token)
        await self._publish(ShockersRefreshed(shockers=self._directory))
        return self._directory

    async def _token_info(self) -> TokenInfo | None:
        """The token's scopes and control limits, read with the lists (so after every
        reconnect): OpenShock does not apply the limits over the hub, the bot does. None when
        the server has no such endpoint at all; any other failure (403 included) fails the
        refresh, so controls wait for limits that are known."""
        try:
            return await self._rest.get_token_info()
        except OpenShockApiError as error:
            if error.status == 404:  # neither /2 nor /1: a server older than token scopes
                _log.info("%s: the server does not describe its API token (%s)", self._name, error)
                return None
            raise

    def request_refresh(self) -> None:
        """Refresh in the background; requests made during a refresh coalesce into one more."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(
            self._refresh_in_background(), name=f"openshock-refresh {self._name}"
        )

    async def stop(self) -> None:
        """Cancel the background refresh (unless it is the caller: it ends on its own)."""
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _refresh_in_background(self) -> None:
        """Refresh until it succeeds: a failed refresh (429, 5xx, unreachable) is retried with
        backoff for as long as the hub is connected, or the lists (None after a start) would
        stay stale or missing, and with them everything that needs them (/stop, /panic). When
        the connection drops meanwhile, the next ``Welcome`` asks for a refresh again. A 401
        means the token was revoked: the connection ends as after a 401 on the upgrade."""
        failures = 0
        while True:
            self._again = False
            try:
                await self.refresh()
            except TokenRejected:
                await self._on_token_revoked()
                return
            except Exception as error:
                failures += 1
                if not self._connected():
                    _log.info("Could not refresh the shockers of %s: %s", self._name, error)
                    return
                delay = self._timings.backoff(failures - 1)
                if isinstance(error, OpenShockError):
                    _log.warning(
                        "Could not refresh the shockers of %s: %s; retrying in %.1f s",
                        self._name,
                        error,
                        delay,
                    )
                else:
                    _log.exception(
                        "Unexpected error refreshing the shockers of %s; retrying in %.1f s",
                        self._name,
                        delay,
                    )
                await asyncio.sleep(delay)
                if not self._connected():
                    return
                continue
            failures = 0
            if not self._again:
                return
