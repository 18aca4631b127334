"""Measuring the CPU a piece of code spends, and only that: the garbage collector paused around it.

A full collection of the test run's heap (hundreds of MB late in the suite) can take a second of this
thread's CPU and happen inside any measured call; the code under test did not spend it."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
