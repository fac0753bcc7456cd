"""Thread counts: independent tasks run one thread each, large tasks take the free cores, and the
caller's settings come back afterwards."""

import threading

import cv2
import numpy as np
import torch

from deblur import threads
from deblur.devices import choose
from deblur.restorer import Restorer
from deblur.shake import search


def test_using_threads_sets_torch_and_opencv_and_restores_them():
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    with threads.using_threads(1):
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (torch_before, cv2_before)


def test_parallel_map_keeps_order_and_gives_each_task_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "_ceiling", 2)
    seen = []

    def task(n):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return n * n

    assert threads.parallel_map(task, range(8)) == [n * n for n in range(8)]
    assert {count for _, count in seen} == {1}
    assert all(name.startswith("deblur") for name, _ in seen)  # in the pool, not the caller's thread


def test_threads_now_stays_between_one_and_the_ceiling(monkeypatch):
    monkeypatch.setattr(threads, "_ceiling", 2)
    assert 1 <= threads.threads_now() <= 2
    idle = threads.idle_cores()
    assert idle is None or 0 <= idle <= threads._usable_cpus()
    monkeypatch.setattr(threads, "_ceiling", 1)  # OMP_NUM_THREADS=1: never more
    assert threads.threads_now() == 1


def test_a_busy_machine_gets_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "_ceiling", 8)
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.2)
    assert threads.threads_now() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 5.6)
    assert threads.threads_now() == 6


def test_the_parallel_kernel_search_finds_what_a_serial_one_does(monkeypatch):
    rng = np.random.default_rng(0)
    region = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
    region = cv2.filter2D(region, -1, np.eye(7, dtype=np.float32) / 7)
    monkeypatch.setattr(threads, "_ceiling", 2)
    side_by_side = search.search_kernel(region, size=11)
    monkeypatch.setattr(threads, "_ceiling", 1)
    with threads.using_threads(1):
        serial = search.search_kernel(region, size=11)
    assert np.array_equal(side_by_side.kernel, serial.kernel)
    assert side_by_side.residuals == serial.residuals


def test_the_network_runs_on_the_free_cores_and_gives_the_threads_back(monkeypatch):
    monkeypatch.setattr(threads, "_ceiling", 2)
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.0)  # another job holds both cores
    counts = []

    def predict(x, origin):
        counts.append(torch.get_num_threads())
        return x

    before = torch.get_num_threads()
    Restorer(predict, choose("cpu")).restore(np.zeros((16, 16, 3), np.float32))
    assert counts == [1] and torch.get_num_threads() == before
