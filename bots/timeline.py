"""Where a `threadwise serve` start-up went: named phases from the process's start to ready, logged once.

``Timeline.mark(phase)`` closes the phase that ran since the previous mark, with the resident memory it
added; the first phase (``interpreter``) runs from the process's start (the kernel's record of it, 10 ms
resolution) to the timeline's creation: the interpreter's own start and the CLI's first imports.
``bench/startup.py`` reads the phases from the "ready" log line.
"""

from __future__ import annotations

import contextlib
import os
import time


def _since_process_start() -> float:
    """Seconds since this process started (0.0 where /proc is not there to say)."""
    with contextlib.suppress(OSError, ValueError, IndexError, AttributeError):
        with open(f"/proc/{os.getpid()}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, ticks since boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    return 0.0


def _resident_mb() -> float:
    """This process's resident memory in MB (0.0 where /proc is not there to say)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{os.getpid()}/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return 0.0


class Timeline:
    def __init__(self) -> None:
        self._phases: dict[str, float] = {"interpreter": _since_process_start()}
        self._memory: dict[str, float] = {"interpreter": _resident_mb()}
        self._last = time.perf_counter()
        self._last_memory = self._memory["interpreter"]

    def mark(self, phase: str) -> None:
        """``phase`` ran from the previous mark until now (a repeated name adds up)."""
        now, memory = time.perf_counter(), _resident_mb()
        self._phases[phase] = self._phases.get(phase, 0.0) + now - self._last
        self._memory[phase] = self._memory.get(phase, 0.0) + memory - self._last_memory
        self._last, self._last_memory = now, memory

    def phases(self) -> dict[str, float]:
        """Each phase's seconds, in the order they first ran, rounded to the millisecond."""
        return {phase: round(seconds, 3) for phase, seconds in self._phases.items()}

    def memory(self) -> dict[str, float]:
        """The resident memory (MB) each phase added, rounded to a tenth."""
        return {phase: round(mb, 1) for phase, mb in self._memory.items()}

    def total(self) -> float:
        return sum(self._phases.values())
