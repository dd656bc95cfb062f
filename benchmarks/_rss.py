"""Peak-memory probes shared by the benchmark workers (stdlib only: they run in any venv)."""

from __future__ import annotations


def rss_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak since the last reset) of this process, MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak measured next is the
    # full input's own and not a leftover of imports or warm-up.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
