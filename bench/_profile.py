"""Profiling one part of a benchmark run in this process: cProfile or py-spy.

``profiled(cprofile=..., py_spy=...)`` profiles what runs inside it: cProfile (deterministic,
the calling thread only, i.e. the event loop; written in pstats format, read with
``python -m pstats FILE``) or py-spy (sampling, every thread of this process, attached to it by
pid; raw collapsed stacks, one ``frame;frame;... count`` line per stack). py-spy is not a
dependency of the project: ``pip install py-spy`` in the environment to use it; it needs ptrace
on this process (allowed for the same user when ``kernel.yama.ptrace_scope`` is 0 or absent).
Both slow the profiled code down (cProfile much more): a profiled run's timings are not figures.
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PY_SPY_RATE = 200  # samples per second
PY_SPY_ATTACH_S = 1.0  # py-spy needs a moment to attach before the profiled part starts


def py_spy_binary() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    return found


@contextlib.contextmanager
def profiled(cprofile: Path | None = None, py_spy: Path | None = None) -> Iterator[None]:
    sampler: subprocess.Popen[bytes] | None = None
    if py_spy is not None:
        sampler = subprocess.Popen(  # noqa: S603 (our own py-spy, on our own pid)
            [
                py_spy_binary(),
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(PY_SPY_RATE),
                "--format",
                "raw",
                "--nonblocking",  # do not pause this process to sample it
                "--output",
                str(py_spy),
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(PY_SPY_ATTACH_S)
    profile = cProfile.Profile() if cprofile is not None else None
    if profile is not None:
        profile.enable()
    try:
        yield
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(str(cprofile))
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
            sampler.wait(30)
