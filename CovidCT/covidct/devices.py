"""Choose the compute device: GPU when present, CPU otherwise, clear errors when asked wrong."""

from __future__ import annotations

import os
from typing import Callable, Optional

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def select_device(requested: str = "auto"):
    """``torch.device`` for ``auto``/``cpu``/``cuda``/``cuda:N``; refuses an absent GPU."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda") or requested == "gpu":
        if not torch.cuda.is_available():
            raise DeviceError(
                "A GPU (CUDA) was requested but none is available to PyTorch on this machine. "
                "Use --device cpu or --device auto.")
        return torch.device("cuda" if requested == "gpu" else requested)
    raise DeviceError(f"Unknown device '{requested}'; use one of {', '.join(DEVICE_CHOICES)}.")


THREADS_ENVIRONMENT_VARIABLE = "COVIDCT_NUM_THREADS"


def available_cpu_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup (container) quota.

    ``os.cpu_count()`` counts the host's cores, which in a container or under ``taskset``
    oversubscribes the CPU (many more threads than cores slow PyTorch down).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max", encoding="ascii").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def configure_cpu_threads(threads=None) -> int:
    """Set PyTorch's intra-op threads to the cores available; returns the number used.

    The user decides when they say so: ``threads``, else ``COVIDCT_NUM_THREADS``, else
    ``OMP_NUM_THREADS`` (which PyTorch already honours, so it is left alone).
    """
    import torch

    if threads is None and os.environ.get(THREADS_ENVIRONMENT_VARIABLE, "").strip():
        try:
            threads = int(os.environ[THREADS_ENVIRONMENT_VARIABLE])
        except ValueError:
            raise DeviceError(f"{THREADS_ENVIRONMENT_VARIABLE} must be a whole number of threads, "
                              f"not '{os.environ[THREADS_ENVIRONMENT_VARIABLE]}'.") from None
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    threads = available_cpu_cores() if threads is None else int(threads)
    if threads < 1:
        raise DeviceError(f"The number of CPU threads must be at least 1 (got {threads}).")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def is_out_of_memory(exc: BaseException) -> bool:
    """True for PyTorch's out-of-memory errors (CUDA's own type, or the message other backends use)."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def release_gpu_memory() -> None:
    """Give PyTorch's cached GPU memory back (after an out-of-memory error), if there is a GPU."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_cpu_fallback(run: Callable, device, out_of_memory_message: str,
                          on_fallback: Optional[Callable] = None):
    """``run(device)`` under the one rule for running out of memory, wherever a model runs.

    With ``on_fallback``, a GPU that runs out of memory releases its cache, ``on_fallback(exc)``
    is told (to warn and record it) and the whole work is done again as ``run("cpu")``.
    Running out of memory with nowhere to fall back to (on the CPU, or without
    ``on_fallback``) raises :class:`DeviceError` with ``out_of_memory_message``; any other
    error propagates unchanged.
    """
    try:
        return run(device)
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        release_gpu_memory()
        if on_fallback is None or str(device) == "cpu":
            raise DeviceError(out_of_memory_message) from None
        on_fallback(exc)
    return run_with_cpu_fallback(run, "cpu", out_of_memory_message)
