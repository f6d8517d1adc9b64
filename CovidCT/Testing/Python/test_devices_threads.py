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
