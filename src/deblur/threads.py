"""How many CPU threads each stage uses: chosen, because oversubscribed cores cost 5-10x.

Torch's intra-op pool (OpenMP) splits every operation across its threads and waits for the
slowest. When another job holds the cores, each wait is for a thread the OS has descheduled, and
work made of many small operations (the kernel search's FFTs and solves) ran 10x slower on 2
cores beside a 2-thread job than idle (bench/speed.py --load). So:
- independent tasks (kernel candidates) run side by side, one thread each (`parallel_map`): the
  OS shares the cores between them and the other job with no waiting on each other;
- a single large task (a network, a whole-photo deconvolution) uses the cores no other process
  is using now (`threads_now`), at least one.
The ceiling is torch's thread count when deblur first asked (OMP_NUM_THREADS, or the caller's own
torch.set_num_threads), so a user who limits threads is obeyed.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

SAMPLE_SECONDS = 0.05  # how long `idle_cores` watches the machine: one scheduler tick is 4 ms
_ceiling: int | None = None


def allowed_threads() -> int:
    """The most threads deblur uses: torch's count when first asked, within this process's CPUs."""
    global _ceiling
    if _ceiling is None:
        _ceiling = max(1, min(torch.get_num_threads(), _usable_cpus()))
    return _ceiling


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def idle_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many of this process's CPUs other processes leave idle, watched for `seconds` (Linux);
    None where it cannot be read. This process's own use in that time counts as idle."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        before, own_before = _cpu_times(cpus), _own_seconds()
        time.sleep(seconds)
        after, own_after = _cpu_times(cpus), _own_seconds()
    except (AttributeError, OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = sum(a[0] - b[0] for a, b in zip(after, before)) / ticks
    total = sum(a[1] - b[1] for a, b in zip(after, before)) / ticks
    if total <= 0:
        return None
    others = max(0.0, busy - (own_after - own_before))
    return max(0.0, len(cpus) * (1 - others / total))


def _cpu_times(cpus: list[int]) -> list[tuple[int, int]]:
    """(busy, total) jiffies of each CPU in `cpus`, from /proc/stat."""
    wanted, times = {f"cpu{n}" for n in cpus}, []
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name in wanted:
                numbers = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
                idle = numbers[3] + numbers[4]
                times.append((sum(numbers) - idle, sum(numbers)))
    if len(times) != len(cpus):
        raise ValueError("not every CPU is listed in /proc/stat")
    return times


def _own_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def threads_now() -> int:
    """Threads for one large task started now: the idle cores, at least 1, at most `allowed_threads`."""
    ceiling = allowed_threads()
    if ceiling == 1:
        return 1
    idle = idle_cores()
    if idle is None:
        return ceiling
    return int(min(ceiling, max(1, round(idle))))


@contextlib.contextmanager
def using_threads(count: int) -> Iterator[int]:
    """Torch's and OpenCV's thread pools set to `count` inside the block, restored after it."""
    import cv2

    allowed_threads()  # read the ceiling before the first change
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(torch_before)
        cv2.setNumThreads(cv2_before)


def parallel_map(function: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """[function(item) for item in items], independent items run side by side with one intra-op
    thread each (`workers`, default `allowed_threads`). Results are those of a serial run with one
    thread, whatever the load."""
    items = list(items)
    workers = min(workers or allowed_threads(), len(items))
    with using_threads(1):
        if workers <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(workers, thread_name_prefix="deblur") as pool:
            return list(pool.map(function, items))
