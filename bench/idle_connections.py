"""What 500 idle hub connections cost one bot process.

The fake OpenShock server runs in a separate process (so its memory and CPU do not count against
the bot) with 500 users, each with a hub and a shocker, and pings every connection every 15 s
like the real server. This process connects all 500 through ``bot.openshock.manager.HubManager``
with default timings (a SignalR ping every 15 s) and an event subscriber per connection, as the
bot does, and prints:

- the time from start until all are connected, and until all shocker lists are loaded;
- resident memory per connection: (VmRSS when connected − VmRSS after imports with the server
  up) / 500, once connected and again after the idle window;
- CPU while idle: this process's CPU seconds over a 30 s idle window, as % of one core and per
  connection.

Bars: under 150 KB and effectively zero CPU (< 0.01 % of a core) per idle connection.
Run: ``python bench/idle_connections.py``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.openshock.hub import HubTimings
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.models import HubEvent
from tests.fakes.openshock_server import FakeOpenShockServer

ACCOUNTS = 500
IDLE_SECONDS = 30.0
SETTLE_SECONDS = 3.0
SERVER_PING_INTERVAL = 15.0  # the real server's keep-alive
CONNECT_DEADLINE = 60.0
BAR_KB = 150.0
BAR_CPU_PCT = 0.01  # % of one core per idle connection


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * ACCOUNTS + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- The server process --------------------------------------------------------------------------


def serve(pipe: Connection, accounts: int) -> None:
    raise_nofile()
    logging.disable(logging.INFO)
    asyncio.run(_serve(pipe, accounts))


async def _serve(pipe: Connection, accounts: int) -> None:
    server = FakeOpenShockServer()
    server.keepalive_interval = SERVER_PING_INTERVAL
    tokens = []
    for n in range(accounts):
        user = server.add_user(f"User {n}")
        server.add_shocker(server.add_device(user, "Hub", online=True), "Collar")
        tokens.append(user.token)
    await server.start()
    pipe.send((server.base_url, tokens))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            break
        pipe.send(len(server.open_connections()))
    await server.stop()
    pipe.send("stopped")


# --- The bot side --------------------------------------------------------------------------------


async def measure(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    base_url, tokens = await loop.run_in_executor(None, pipe.recv)

    async def on_event(account_id: int, event: HubEvent) -> None:
        return None

    manager = HubManager(on_event=on_event, timings=HubTimings())
    gc.collect()
    baseline = rss_kb()

    started = time.perf_counter()
    hubs = [
        await manager.start(HubAccount(account_id=n + 1, api_url=base_url, token=token))
        for n, token in enumerate(tokens)
    ]
    await asyncio.gather(*(hub.wait_connected(timeout=CONNECT_DEADLINE) for hub in hubs))
    connected_s = time.perf_counter() - started
    while any(hub.shockers is None for hub in hubs):
        if time.perf_counter() - started > CONNECT_DEADLINE:
            raise SystemExit("shocker lists did not all load in time")
        await asyncio.sleep(0.05)
    loaded_s = time.perf_counter() - started

    await asyncio.sleep(SETTLE_SECONDS)
    gc.collect()
    connected_rss = rss_kb()

    cpu_before, wall_before = time.process_time(), time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu = time.process_time() - cpu_before
    idle_wall = time.perf_counter() - wall_before
    gc.collect()
    idle_rss = rss_kb()
    still_connected = sum(hub.connected for hub in hubs)
    pipe.send("count")
    server_open = await loop.run_in_executor(None, pipe.recv)

    await manager.stop_all()

    n = len(hubs)
    per_conn_connected = (connected_rss - baseline) / n
    per_conn_idle = (idle_rss - baseline) / n
    cpu_pct = idle_cpu / idle_wall * 100
    per_conn_cpu_pct = cpu_pct / n
    print(f"{n} hub connections (HubManager, default timings), fake server in another process")
    print(
        f"connect: all connected in {connected_s:.2f} s, all shocker lists loaded in "
        f"{loaded_s:.2f} s; after idling {still_connected}/{n} connected "
        f"({server_open} open at the server)"
    )
    print(
        f"memory: VmRSS baseline {baseline / 1024:.1f} MiB, connected "
        f"{connected_rss / 1024:.1f} MiB, after idling {idle_rss / 1024:.1f} MiB"
    )
    print(
        f"memory per connection: {per_conn_connected:.1f} KB connected, "
        f"{per_conn_idle:.1f} KB after idling"
    )
    print(
        f"idle CPU over {idle_wall:.1f} s: {idle_cpu:.3f} s = {cpu_pct:.3f} % of one core; "
        f"per connection {per_conn_cpu_pct:.5f} % ({idle_cpu / idle_wall / n * 1e6:.1f} µs/s)"
    )
    worst_kb = max(per_conn_connected, per_conn_idle)
    print(f"bar: < {BAR_KB:.0f} KB per connection: {'PASS' if worst_kb < BAR_KB else 'FAIL'}")
    cpu_ok = per_conn_cpu_pct < BAR_CPU_PCT
    print(
        f"bar: effectively zero idle CPU (< {BAR_CPU_PCT} % of a core per connection): "
        f"{'PASS' if cpu_ok else 'FAIL'}"
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.disable(logging.INFO)  # silence everything below WARNING during the run
    soft, _ = raise_nofile()
    if soft != resource.RLIM_INFINITY and soft < 2 * ACCOUNTS + 64:
        raise SystemExit(f"RLIMIT_NOFILE is {soft}: too low for {ACCOUNTS} connections")
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=serve, args=(theirs, ACCOUNTS), daemon=True)
    server.start()
    try:
        asyncio.run(measure(ours))
    finally:
        ours.send("stop")
        if ours.poll(10):
            ours.recv()
        server.join(10)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
