"""The fakes' process of the benchmarks, and this process's end of the pipe to it.

A benchmark runs the fake Discord API and the fake OpenShock server in a separate process
(``spawn``), as Discord and OpenShock are remote in production: their CPU, their heap (every
recorded request and frame) and their garbage collections are not the bot's. The two processes
talk over a ``multiprocessing`` pipe: this process sends ``(command, argument)`` and the fakes'
process answers each with one object (an exception is raised here); ``("stop", None)`` ends it.
Times that cross the pipe are ``time.monotonic()`` (``CLOCK_MONOTONIC``, one clock for all
processes on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import multiprocessing
import os
import resource
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

PIPE_TIMEOUT = 60.0  # for any answer of the fakes' process, unless the caller says otherwise

# A command's handler in the fakes' process: its argument -> the answer (or an awaitable of it).
Handler = Callable[[Any], Any]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quiet_logging() -> None:
    """Warnings and errors only (both processes call it)."""
    logging.basicConfig(level=logging.WARNING)
    logging.disable(logging.INFO)


# --- In the fakes' process -----------------------------------------------------------------------


async def serve_commands(pipe: Connection, handlers: Mapping[str, Handler]) -> None:
    """Answer commands until ``stop``, one at a time, on the running loop (the fakes keep serving
    meanwhile: the pipe is read in a thread). Built in: ``cpu`` (this process's CPU seconds;
    it also freezes what the fakes recorded so far, see below).
    A handler's exception is sent back instead of an answer."""
    loop = asyncio.get_running_loop()
    while True:
        command, argument = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            return
        answer: Any
        if command == "cpu":
            # Asked before and after every timed run. The fakes keep a record of every request
            # and frame; out of the garbage collector's walks, its full passes over them (100 ms
            # and more, growing with every run) do not hold up the frames being timed.
            gc.freeze()
            answer = cpu_seconds()
        elif (handler := handlers.get(command)) is None:
            answer = ValueError(f"unknown command {command!r}")
        else:
            try:
                answer = handler(argument)
                if inspect.isawaitable(answer):
                    answer = await answer
            except Exception as error:
                answer = error
        pipe.send(answer)


# --- In the benchmark's process ------------------------------------------------------------------


class Fakes:
    """This process's end of the pipe to the fakes' process."""

    def __init__(self, pipe: Connection, pid: int | None = None) -> None:
        self.pipe = pipe
        self.pid = pid

    def receive(self, limit: float = PIPE_TIMEOUT) -> Any:
        if not self.pipe.poll(limit):
            raise RuntimeError(f"the fakes' process did not answer within {limit:.0f} s")
        answer = self.pipe.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _ask(self, command: str, argument: Any, limit: float) -> Any:
        self.pipe.send((command, argument))
        return self.receive(limit)

    async def ask(self, command: str, argument: Any = None, limit: float = PIPE_TIMEOUT) -> Any:
        """The answer (within ``limit`` seconds) is awaited in a thread, blocked on the pipe
        without the GIL: this process's loop keeps running meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(
            None, self._ask, command, argument, limit
        )


def pin_apart(fakes: Fakes) -> str:
    """On a machine with two CPUs or more, keep this process on one and the fakes' process on
    another, each to itself: left to the scheduler, both sometimes share a CPU, and whatever
    runs then is slowed down by the other's use of its caches. Says what it did."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or fakes.pid is None:
        return "not pinned (one CPU)"
    os.sched_setaffinity(0, {cpus[0]})  # this thread; threads started later inherit it
    os.sched_setaffinity(fakes.pid, {cpus[1]})
    return f"this process pinned to CPU {cpus[0]}, the fakes' to CPU {cpus[1]}"


@contextlib.contextmanager
def fakes_process(target: Callable[..., None], *args: Any) -> Iterator[Fakes]:
    """Start ``target(pipe, *args)`` in a spawned process (it must be importable: a module-level
    function) and stop it on exit: ``stop``, then it sends one last object, then it exits."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(theirs, *args), name="fakes", daemon=True)
    process.start()
    theirs.close()
    try:
        yield Fakes(ours, process.pid)
    finally:
        try:
            ours.send(("stop", None))
            if ours.poll(10):
                ours.recv()
        except (OSError, EOFError):
            pass  # the fakes' process is gone already
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)
        ours.close()
