"""CPU thread count: the cores this process may use, unless the user says otherwise."""

from __future__ import annotations

import os

import pytest
import torch

from covidct.devices import available_cpu_cores, configure_cpu_threads
from covidct.errors import DeviceError


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("COVIDCT_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_available_cores_follow_the_affinity():
    assert 1 <= available_cpu_cores() <= len(os.sched_getaffinity(0))


def test_default_uses_the_available_cores(restore_threads):
    torch.set_num_threads(1)
    assert configure_cpu_threads() == available_cpu_cores()
    assert torch.get_num_threads() == available_cpu_cores()


def test_user_choice_wins(restore_threads):
    assert configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
    restore_threads.setenv("COVIDCT_NUM_THREADS", "1")
    torch.set_num_threads(2)
    assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1


def test_omp_num_threads_is_left_to_pytorch(restore_threads):
    torch.set_num_threads(1)
    restore_threads.setenv("OMP_NUM_THREADS", "3")
    assert configure_cpu_threads() == 1


@pytest.mark.parametrize("bad", ["zero", "0"])
def test_bad_thread_count_is_a_clear_error(restore_threads, bad):
    restore_threads.setenv("COVIDCT_NUM_THREADS", bad)
    with pytest.raises(DeviceError, match="thread"):
        configure_cpu_threads()


def test_out_of_memory_on_a_gpu_is_rerun_on_the_cpu_once():
    from covidct.devices import run_with_cpu_fallback
    from covidct.errors import DeviceError

    calls, told = [], []

    def run(device):
        calls.append(str(device))
        if str(device) != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return "done"

    assert run_with_cpu_fallback(run, "cuda", "no memory", on_fallback=told.append) == "done"
    assert calls == ["cuda", "cpu"] and len(told) == 1
    with pytest.raises(DeviceError, match="no memory"):  # nowhere to fall back to
        run_with_cpu_fallback(run, "cuda", "no memory")

    def broken(device):
        raise RuntimeError("CPU out of memory (simulated)" if device == "cpu" else "a bug")

    with pytest.raises(DeviceError, match="no memory"):
        run_with_cpu_fallback(broken, "cpu", "no memory", on_fallback=told.append)
    with pytest.raises(RuntimeError, match="a bug"):  # not a memory problem: unchanged
        run_with_cpu_fallback(broken, "cuda", "no memory", on_fallback=told.append)
