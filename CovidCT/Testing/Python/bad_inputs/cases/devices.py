"""Cases: compute devices (GPU asked for but absent, unknown device, GPU out of memory)."""

from __future__ import annotations

from pathlib import Path

from bad_inputs.building import analyze_argv, cuda_available, grey_slice_uint8, write_scan
from bad_inputs.checks import expect_complete_analysis
from bad_inputs.doubles import gpu_out_of_memory_in_classifier, gpu_out_of_memory_in_enhancer
from bad_inputs.framework import Expected, Prepared, case
from covidct.errors import DeviceError


@case("gpu_requested_but_absent", "device", Expected(6, DeviceError, "GPU .* none is available"))
def _no_gpu(tmp: Path) -> Prepared:
    """analyze --device cuda on a machine without a GPU: refused before any work."""
    write_scan(tmp / "s")
    argv = analyze_argv(tmp / "s", tmp / "out")
    argv[argv.index("--device") + 1] = "cuda"
    return Prepared(argv, [tmp / "s"], tmp / "out",
                    skip="a CUDA GPU is present" if cuda_available() else None)


@case("gpu_requested_for_slices", "device", Expected(6, DeviceError, "Use --device cpu"))
def _no_gpu_classify(tmp: Path) -> Prepared:
    """covidct classify --device cuda on a machine without a GPU."""
    from PIL import Image

    image = tmp / "slice.png"
    Image.fromarray(grey_slice_uint8()).save(image)
    return Prepared(["classify", image, "--device", "cuda"], [image],
                    skip="a CUDA GPU is present" if cuda_available() else None)


@case("unknown_device", "device", Expected(6, DeviceError, "Unknown device 'tpu'"))
def _unknown_device(tmp: Path) -> Prepared:
    """--device tpu (not a device CovidCT knows)."""
    write_scan(tmp / "s")
    argv = analyze_argv(tmp / "s", tmp / "out")
    argv[argv.index("--device") + 1] = "tpu"
    return Prepared(argv, [tmp / "s"], tmp / "out")


@case("gpu_out_of_memory_classifier", "device", Expected(0, None, "ran out of memory.*re-run on the CPU"))
def _oom_classifier(tmp: Path) -> Prepared:
    """The GPU runs out of memory while classifying (simulated): re-run on the CPU, with a warning."""
    write_scan(tmp / "s")
    argv = analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report")
    argv[argv.index("--device") + 1] = "auto"
    return Prepared(argv, [tmp / "s"], tmp / "out", fakes=True,
                    patches=[gpu_out_of_memory_in_classifier], check=expect_complete_analysis)


@case("gpu_out_of_memory_enhancer", "device", Expected(6, DeviceError, "ran out of memory while enhancing"))
def _oom_enhancer(tmp: Path) -> Prepared:
    """The GPU runs out of memory while enhancing (simulated): a clear error, nothing written."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "on", "--no-report"),
                    [tmp / "s"], tmp / "out", fakes=True, patches=[gpu_out_of_memory_in_enhancer])
