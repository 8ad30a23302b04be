"""Shared helpers of the benchmarks: machine info, timing, markdown table, JSON and plot writers."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    """CPU model, cores, load and library versions (timings on a shared machine are noisy)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - torch is optional here
        pass
    return info


def settle(seconds: float = 1.0) -> None:
    """Flush dirty pages (a build just wrote its files) and wait: the kernel's writeback would
    otherwise run inside the first timed runs (the C rows' first calls took 1.4-1.8x their
    settled time right after the build)."""
    if hasattr(os, "sync"):
        os.sync()
    time.sleep(seconds)


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float], object]:
    """(median seconds, all samples, last result) of ``fn`` after ``warmup`` untimed calls."""
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), samples, result


class Paired(NamedTuple):
    ratio: float  # median of t_b / t_a over the pairs
    ratios: list[float]
    a_s: float  # median t_a
    b_s: float  # median t_b


def paired_ratio(fa: Callable[[], object], fb: Callable[[], object], repeats: int) -> Paired:
    """Median of t_b / t_a over ``repeats`` back-to-back (a, b) pairs, order alternating, after
    one warm-up of each: machine-load drift hits both sides of a pair alike, unlike a ratio of
    two medians taken at different times. Also the median time of each side."""
    fa(), fb()
    ta, tb = [], []
    for i in range(repeats):
        order = (fa, fb) if i % 2 == 0 else (fb, fa)
        times = {}
        for f in order:
            t0 = time.perf_counter()
            f()
            times[f] = time.perf_counter() - t0
        ta.append(times[fa])
        tb.append(times[fb])
    ratios = [b / a for a, b in zip(ta, tb)]
    return Paired(statistics.median(ratios), ratios, statistics.median(ta), statistics.median(tb))


def fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, title: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{body.rstrip()}\n")


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def plot(path: Path, draw: Callable) -> bool:
    """Call ``draw(fig, ax)`` on a fresh figure and save it; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw(fig, ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
