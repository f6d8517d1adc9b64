"""Choose the compute device: GPU when present, CPU otherwise, clear errors when asked wrong."""

from __future__ import annotations

import os

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


def configure_cpu_threads():
    """Use every core for intra-op parallelism unless the user already set a limit."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
