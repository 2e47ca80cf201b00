"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB.

    Linux's ``VmHWM`` (high-water mark of this process image's memory), not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over fork and exec, so a worker started by a parent that once held a model would report the
    parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
