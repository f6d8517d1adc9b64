"""A corpus of bad and awkward inputs, generated on the fly (no stored binaries).

Each case is a function that builds its input in a scratch folder and returns the
command line to run (:class:`Prepared`), registered with the outcome CovidCT must give
(:class:`Expected`): success, or one specific error class, exit code and message.
``test_robustness_corpus.py`` runs every case; ``tools/robustness_table.py`` turns the
registry into ``docs/robustness.md`` so the documented table never drifts from the tests.

Run as a script, this file is the CLI with test doubles installed (used by the cases
that need a separate process)::

    python bad_inputs.py [--fake-models] [--pause-after-lung-mask] COVIDCT-ARGS...

``--fake-models`` swaps the classifier and enhancer for deterministic stand-ins (the
heatmap is the lung-windowed CT inside the lung mask), so the pipeline's plumbing
(loading, geometry, writing, cancelling) is tested without the trained weights.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent

import dicom_factory as factory  # noqa: E402  (importable: pytest's pythonpath, or the tool's own path)
from covidct.errors import (  # noqa: E402
    CancelledError, DeviceError, InputNotFoundError, InvalidCTError, MixedSeriesError, OutputError,
    UnsupportedInputError, WeightsError,
)

SUBPROCESS_TIMEOUT_S = 180
READY_MARKER = "ROBUSTNESS-READY"


# --------------------------------------------------------------------------- data model

@dataclass(frozen=True)
class Expected:
    """What CovidCT must do: exit code 0 (success) or a specific error class and message.

    ``message`` is a regular expression searched in stderr for errors and in stdout for
    successes (e.g. a warning the user must see).
    """

    exit_code: int = 0
    error: Optional[type] = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class RunResult:
    exit_code: int
    stdout: str
    stderr: str
    error_class: Optional[type] = None  # known only for in-process runs


@dataclass
class Prepared:
    """A built case: the CLI arguments plus what the test must watch."""

    argv: list
    inputs: list = field(default_factory=list)    # files/folders that must stay byte-identical
    output: Optional[Path] = None                  # result location: absent after a failure
    env: dict = field(default_factory=dict)        # extra environment (e.g. COVIDCT_WEIGHTS_DIR)
    patches: list = field(default_factory=list)    # callables returning context managers (in-process)
    fakes: bool = False                            # stand-in models instead of the trained weights
    skip: Optional[str] = None                     # reason this case cannot run here
    check: Optional[Callable[["Prepared", RunResult], None]] = None  # extra checks on success
    runner: Optional[Callable[["Prepared"], RunResult]] = None       # custom way to run it


@dataclass
class Case:
    name: str
    topic: str
    description: str
    build: Callable[[Path], Prepared]
    expected: Expected
    slow: bool = False


CASES: dict = {}


def case(name: str, topic: str, expected: Expected, slow: bool = False):
    """Register a builder; its docstring is the case's description in the table."""

    def register(build):
        assert name not in CASES, name
        CASES[name] = Case(name, topic, " ".join((build.__doc__ or "").split()), build, expected, slow)
        return build

    return register


# --------------------------------------------------------------------------- building blocks

def scan_hu(slices: int = 24) -> np.ndarray:
    """The asymmetric phantom at a size whose lungs pass the lung-size checks (3 mm voxels)."""
    return factory.phantom_hu(rows=96, cols=96, slices=slices)


SCAN_GEOMETRY = {"spacing_mm": (3.0, 3.0), "slice_mm": 3.0}


def write_scan(folder: Path, **kwargs) -> list:
    options = dict(SCAN_GEOMETRY)
    options.update(kwargs)
    hu = options.pop("hu", None)
    return factory.write_series(folder, scan_hu() if hu is None else hu, **options)


def edit_series(paths, edit) -> None:
    """Rewrite each file of a series after ``edit(dataset, index)`` (index = slice order written)."""
    import pydicom

    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        edit(ds, index)
        ds.save_as(path, enforce_file_format=True)


def write_volume(path: Path, hu: np.ndarray, spacing=(3.0, 3.0, 3.0), origin=(0.0, 0.0, 0.0),
                 direction=None) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, dtype=float).flatten()))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def grey_slice_uint8(size: int = 96) -> np.ndarray:
    hu = factory.phantom_hu(rows=size, cols=size, slices=1)[0]
    return np.clip((hu + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)


def analyze_argv(input_path, output, *extra) -> list:
    return ["analyze", str(input_path), "-o", str(output), "--device", "cpu", "--progress", "none",
            *map(str, extra)]


def snapshot(paths) -> dict:
    """sha256 and mode of every file under ``paths`` (to prove the input was not touched)."""
    state = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                digest = "unreadable"
            state[str(path)] = (digest, path.stat().st_mode)
    return state


def partial_leftovers(folder: Path) -> list:
    """Temporary files/folders an interrupted write could leave behind."""
    if not folder.exists():
        return []
    return sorted(str(p) for p in folder.rglob("*") if ".partial" in p.name)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------- stand-in models

def fake_classify_volume(volume, lung_mask=None, device="auto", progress=None, cancel=None, **_):
    """Deterministic classifier stand-in: heatmap = lung-windowed CT inside the lungs."""
    from covidct.classify.api import ScanClassification
    from covidct.preprocess.lung_mask import compute_lung_mask
    from covidct.preprocess.windowing import lung_window
    from covidct.result import slice_scores

    if cancel is not None:
        cancel.check("classification")
    mask = compute_lung_mask(volume) if lung_mask is None else np.asarray(lung_mask, dtype=bool)
    heat = (lung_window(np.asarray(volume.voxels, dtype=np.float32)) * mask).astype(np.float32)
    scores = [round(float(heat[k][mask[k]].mean()), 5) if mask[k].any() else None for k in range(volume.num_slices)]
    per_slice = [entry.to_dict() for entry in slice_scores([round(float(z), 3) for z in volume.slice_positions_mm()],
                                                           scores)]
    probability = float(np.mean([s for s in scores if s is not None]))
    if progress is not None:
        progress(1.0, "classified")
    return ScanClassification(
        covid_probability=probability, threshold=0.5,
        decision="COVID-19" if probability >= 0.5 else "non-COVID", per_slice=per_slice,
        heatmap=heat, model={"name": "fake", "version": "test", "sha256": "fake"}, pooling="mean")


def fake_enhance_volume(volume, scale=4, model="fidelity", device="auto", progress=None, cancel=None, **_):
    """Enhancer stand-in: exact-geometry linear up-sampling (what the real one must line up with)."""
    from covidct.enhance.inference import choose_scale
    from volume_helpers import resize_in_plane

    chosen, reason = choose_scale(volume.shape[1:], scale)
    if cancel is not None:
        cancel.check("enhance")
    out = resize_in_plane(volume, chosen, order=1)
    if np.asarray(volume.voxels).dtype.kind in "iu":
        out = out.with_voxels(np.round(out.voxels).astype(np.int16))
    return out, {"scale": chosen, "scale_choice": reason, "model": model, "model_key": "fake",
                 "version": "test", "sha256": "fake"}


@contextlib.contextmanager
def fake_models():
    import covidct.classify
    import covidct.enhance

    with mock.patch.object(covidct.classify, "classify_volume", fake_classify_volume), \
            mock.patch.object(covidct.enhance, "enhance_volume", fake_enhance_volume):
        yield


def gpu_out_of_memory_in_classifier():
    """Classification on any device but the CPU fails as a CUDA OOM does; the CPU works."""
    import covidct.classify

    def classify(volume, lung_mask=None, device="auto", **kwargs):
        if str(device) != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return fake_classify_volume(volume, lung_mask, device=device, **kwargs)

    return mock.patch.object(covidct.classify, "classify_volume", classify)


def gpu_out_of_memory_in_enhancer():
    import covidct.enhance

    def enhance(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB (simulated)")

    return mock.patch.object(covidct.enhance, "enhance_volume", enhance)


def disk_full_on_text_write():
    """Every text write gets half its bytes onto disk, then ENOSPC (a full disk)."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return mock.patch.object(Path, "write_text", write_text)


def disk_full_on_volume_write():
    """ITK reports a full disk as a RuntimeError after writing part of the file."""
    import SimpleITK as sitk

    def write_image(image, path, *args, **kwargs):
        Path(path).write_bytes(b"NRRD0004\n# half a file")
        raise RuntimeError("ImageFileWriter (0x1): Could not write file: No space left on device")

    return mock.patch.object(sitk, "WriteImage", write_image)


def permission_denied_for(path: Path):
    """What the kernel answers a non-root user for a ``chmod 000`` file (root reads anyway)."""
    real = os.access
    target = str(path)

    def access(p, mode, *args, **kwargs):
        if str(p) == target:
            return False
        return real(p, mode, *args, **kwargs)

    return mock.patch.object(os, "access", access)


# --------------------------------------------------------------------------- runners

def _spy_on_handlers(build_parser, raised: list):
    def build():
        parser = build_parser()
        for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public API
            for sub in action.choices.values():
                handler = sub.get_default("handler")
                if handler is not None:
                    sub.set_defaults(handler=_recording(handler, raised))
        return parser

    return build


def _recording(handler, raised: list):
    def run(args):
        try:
            return handler(args)
        except Exception as exc:
            raised.append(exc)
            raise

    return run


def run_in_process(prepared: Prepared) -> RunResult:
    """``covidct.cli.main(argv)`` here, stdout/stderr captured, the error class recorded.

    An exception escaping ``main`` (a traceback for the user) propagates to the caller.
    """
    from covidct import cli

    raised: list = []
    out, err = io.StringIO(), io.StringIO()
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(cli, "build_parser",
                                                  _spy_on_handlers(cli.build_parser, raised)))
            stack.enter_context(mock.patch.dict(os.environ, {k: str(v) for k, v in prepared.env.items()}))
            if prepared.fakes:
                stack.enter_context(fake_models())
            for patch in prepared.patches:
                stack.enter_context(patch())
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            code = cli.main([str(a) for a in prepared.argv])
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)  # analyze installs its own
    return RunResult(code, out.getvalue(), err.getvalue(), type(raised[0]) if raised else None)


def cli_command(prepared: Prepared, *flags) -> list:
    if prepared.fakes or flags:
        return [sys.executable, str(Path(__file__).resolve()), *flags,
                *(["--fake-models"] if prepared.fakes else []), *map(str, prepared.argv)]
    return [sys.executable, "-m", "covidct.cli", *map(str, prepared.argv)]


def subprocess_env(prepared: Prepared) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in prepared.env.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_in_subprocess(prepared: Prepared) -> RunResult:
    """A real process: what a user at a terminal or the Slicer module sees."""
    done = subprocess.run(cli_command(prepared), capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S, env=subprocess_env(prepared))
    return RunResult(done.returncode, done.stdout, done.stderr)


def run_case(prepared: Prepared) -> RunResult:
    runner = prepared.runner or run_in_process
    return runner(prepared)


def run_cancelled_by_sigterm(prepared: Prepared) -> RunResult:
    """Start the analysis, wait until it is inside the lung-mask stage, send SIGTERM."""
    process = subprocess.Popen(cli_command(prepared, "--pause-after-lung-mask"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=subprocess_env(prepared))
    try:
        stdout_lines = []
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        for line in process.stdout:
            if READY_MARKER in line:
                break
            stdout_lines.append(line)
            if time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        rest_out, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return RunResult(process.returncode, "".join(stdout_lines) + rest_out, stderr)


def run_two_at_once(prepared: Prepared) -> RunResult:
    """The same command twice, concurrently, into ``output`` and ``output`` + "-b"."""
    second = Prepared(argv=[str(prepared.output) + "-b" if a == str(prepared.output) else a
                            for a in map(str, prepared.argv)], fakes=prepared.fakes, env=prepared.env)
    processes = [subprocess.Popen(cli_command(p), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=subprocess_env(p)) for p in (prepared, second)]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    code = max(abs(r[0]) for r in results)
    return RunResult(code, "".join(r[1] for r in results), "".join(r[2] for r in results))


# --------------------------------------------------------------------------- checks on successes

def expect_info_json(**expected):
    def check(prepared: Prepared, result: RunResult) -> None:
        info = json.loads(result.stdout)
        for key, value in expected.items():
            assert info[key] == value, (key, info[key], value)
        assert info["lung_volume_ml"]["total_ml"] > 0

    return check


def expect_complete_analysis(prepared: Prepared, result: RunResult) -> None:
    outputs = [prepared.output] + ([Path(str(prepared.output) + "-b")]
                                   if prepared.runner is run_two_at_once else [])
    contents = []
    for output in outputs:
        saved = json.loads((output / "result.json").read_text())
        for key in ("input", "heatmap", "lung_mask"):
            assert (output / saved[key]).is_file(), key
        contents.append({k: saved[k] for k in ("probabilities", "per_slice", "quantification")})
    assert all(c == contents[0] for c in contents), "the same input gave different numbers"


# --------------------------------------------------------------------------- the corpus: paths

@case("nonexistent_path", "path", Expected(2, InputNotFoundError, "does not exist"))
def _nonexistent(tmp: Path) -> Prepared:
    """A path that does not exist."""
    return Prepared(analyze_argv(tmp / "no-such-scan", tmp / "out"), output=tmp / "out")


@case("empty_folder", "path", Expected(3, UnsupportedInputError, "is empty"))
def _empty_folder(tmp: Path) -> Prepared:
    """An empty folder."""
    (tmp / "empty").mkdir()
    return Prepared(analyze_argv(tmp / "empty", tmp / "out"), [tmp / "empty"], tmp / "out")


@case("folder_without_dicom", "path", Expected(3, UnsupportedInputError, "No DICOM images"))
def _no_dicom(tmp: Path) -> Prepared:
    """A folder of text files and a thumbnail, no DICOM."""
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("scan exported on CD")
    (folder / "thumb.bin").write_bytes(os.urandom(512))
    return Prepared(analyze_argv(folder, tmp / "out"), [folder], tmp / "out")


@case("unknown_file_format", "path", Expected(3, UnsupportedInputError, "unknown format"))
def _unknown_format(tmp: Path) -> Prepared:
    """A file with an extension CovidCT does not read."""
    path = tmp / "scan.xyz"
    path.write_bytes(os.urandom(256))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("unreadable_permissions", "path", Expected(2, InputNotFoundError, "permission denied"))
def _unreadable(tmp: Path) -> Prepared:
    """A volume file with mode 000 (skipped as root, where the kernel lets every read through)."""
    path = write_volume(tmp / "locked.nrrd", scan_hu().astype(np.int16))
    path.chmod(0)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out",
                    skip="running as root: chmod 000 does not stop reads (see the simulated case)"
                    if is_root() else None)


@case("unreadable_permissions_simulated", "path", Expected(2, InputNotFoundError, "permission denied"))
def _unreadable_simulated(tmp: Path) -> Prepared:
    """A volume file the OS refuses to read (os.access says no, as for a non-root user and mode 000)."""
    path = write_volume(tmp / "locked.nrrd", scan_hu().astype(np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out",
                    patches=[lambda: permission_denied_for(path)])


# --------------------------------------------------------------------------- the corpus: DICOM

@case("modality_mr", "DICOM", Expected(4, InvalidCTError, "No CT series.*MR"))
def _mr(tmp: Path) -> Prepared:
    """An MR series (not CT)."""
    write_scan(tmp / "mr", modality="MR")
    return Prepared(analyze_argv(tmp / "mr", tmp / "out"), [tmp / "mr"], tmp / "out")


@case("modality_cr", "DICOM", Expected(4, InvalidCTError, "No CT series.*CR"))
def _cr(tmp: Path) -> Prepared:
    """A single CR (chest radiograph) image."""
    write_scan(tmp / "cr", hu=scan_hu(1), modality="CR")
    return Prepared(analyze_argv(tmp / "cr", tmp / "out"), [tmp / "cr"], tmp / "out")


@case("rgb_secondary_capture", "DICOM", Expected(4, InvalidCTError, "colour"))
def _rgb(tmp: Path) -> Prepared:
    """RGB secondary captures labelled CT (screenshots of a viewer)."""
    write_scan(tmp / "sc", rgb=True)
    return Prepared(analyze_argv(tmp / "sc", tmp / "out"), [tmp / "sc"], tmp / "out")


@case("ct_with_secondary_capture_alongside", "DICOM", Expected(0, None, ""))
def _ct_and_sc(tmp: Path) -> Prepared:
    """A CT series plus an RGB secondary-capture series (OT) in the same folder: the CT is used."""
    write_scan(tmp / "study")
    write_scan(tmp / "study" / "sc", hu=scan_hu(2), modality="OT", rgb=True)
    return Prepared(["info", tmp / "study", "--json"], [tmp / "study"],
                    check=expect_info_json(shape_kji=[24, 96, 96]))


@case("single_dicom_slice", "DICOM", Expected(4, InvalidCTError, "fewer than 5|single slice"))
def _single_slice(tmp: Path) -> Prepared:
    """One CT slice where a scan is needed."""
    write_scan(tmp / "one", hu=scan_hu(1))
    return Prepared(analyze_argv(tmp / "one", tmp / "out"), [tmp / "one"], tmp / "out")


@case("two_series_mixed", "DICOM", Expected(4, MixedSeriesError, "several CT series.*--series"))
def _two_series(tmp: Path) -> Prepared:
    """Two CT series (lung and mediastinal kernels) in one folder."""
    write_scan(tmp / "mix", description="Lung 1mm")
    write_scan(tmp / "mix" / "b", description="Mediastinum 3mm")
    return Prepared(analyze_argv(tmp / "mix", tmp / "out"), [tmp / "mix"], tmp / "out")


@case("two_series_one_chosen", "DICOM", Expected(0, None, ""))
def _two_series_chosen(tmp: Path) -> Prepared:
    """Two CT series in one folder, one chosen with --series."""
    write_scan(tmp / "mix", description="Lung", series_uid="1.2.826.0.1.3680043.8.498.1")
    write_scan(tmp / "mix" / "b", hu=scan_hu(12), description="Mediastinum")
    return Prepared(["info", tmp / "mix", "--series", "1.2.826.0.1.3680043.8.498.1", "--json"],
                    [tmp / "mix"], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("unknown_series_uid", "DICOM", Expected(4, MixedSeriesError, "is not in this folder"))
def _unknown_series(tmp: Path) -> Prepared:
    """--series names a series the folder does not hold."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--series", "1.2.3.4"), [tmp / "s"], tmp / "out")


@case("unsorted_positions", "DICOM", Expected(0, None, ""))
def _unsorted(tmp: Path) -> Prepared:
    """Slices stored in shuffled order (names, instance numbers and positions disagree): sorted by position."""
    order = np.random.default_rng(3).permutation(24)
    hu = scan_hu()
    hu[:, 0, 0] = -1000 + 10 * order  # marker: true anatomical rank of each stored slice
    write_scan(tmp / "s", hu=hu, z_positions=[float(3.0 * r) for r in order])

    def check(prepared, result):
        from covidct.io import load_ct

        volume = load_ct(tmp / "s")
        assert np.array_equal(volume.voxels[:, 0, 0], -1000 + 10 * np.arange(24))
        expect_info_json(shape_kji=[24, 96, 96])(prepared, result)

    return Prepared(["info", tmp / "s", "--json"], [tmp / "s"], check=check)


@case("duplicated_positions", "DICOM", Expected(4, InvalidCTError, "same position"))
def _duplicated(tmp: Path) -> Prepared:
    """Two slices at the same position (the same image exported twice)."""
    z = [3.0 * k for k in range(24)]
    z[10] = z[9]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("missing_slice_gap", "DICOM", Expected(4, InvalidCTError, "not uniform.*missing slice"))
def _gap(tmp: Path) -> Prepared:
    """One slice missing in the middle of the series (a 6 mm gap in 3 mm spacing)."""
    z = [3.0 * k for k in range(25)]
    del z[12]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("non_uniform_spacing", "DICOM", Expected(4, InvalidCTError, "not uniform"))
def _non_uniform(tmp: Path) -> Prepared:
    """Spacing that changes along the scan (3 mm, then 5 mm: two reconstructions stitched)."""
    z = [3.0 * k for k in range(16)] + [45.0 + 5.0 * k for k in range(1, 9)]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("oblique_orientation", "DICOM", Expected(0, None, "not axial"))
def _oblique(tmp: Path) -> Prepared:
    """Slices rotated 35 degrees about the patient's left-right axis (consistent geometry): loaded, with a warning."""
    angle = np.deg2rad(35.0)
    write_scan(tmp / "s", orientation=(1, 0, 0, 0, float(np.cos(angle)), float(np.sin(angle))))
    return Prepared(["info", tmp / "s"], [tmp / "s"])


@case("gantry_tilt", "DICOM", Expected(4, InvalidCTError, "gantry-tilted"))
def _gantry_tilt(tmp: Path) -> Prepared:
    """Gantry tilted 15 degrees: slice normal tilted but positions advance along the table (sheared stack)."""
    angle = np.deg2rad(15.0)
    paths = write_scan(tmp / "s", orientation=(1, 0, 0, 0, float(np.cos(angle)), float(np.sin(angle))))
    edit_series(paths, lambda ds, k: setattr(ds, "ImagePositionPatient", [-25.0, -25.0, 3.0 * k]))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("missing_image_position", "DICOM", Expected(4, InvalidCTError, "ImagePositionPatient"))
def _no_position(tmp: Path) -> Prepared:
    """ImagePositionPatient deleted from one slice (the slice cannot be placed)."""
    paths = write_scan(tmp / "s")
    edit_series(paths[5:6], lambda ds, k: delattr(ds, "ImagePositionPatient"))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("mixed_matrix_sizes", "DICOM", Expected(4, InvalidCTError, "different matrix sizes"))
def _mixed_sizes(tmp: Path) -> Prepared:
    """One slice with a different matrix (a localizer sharing the series UID)."""
    paths = write_scan(tmp / "s")

    def shrink(ds, k):
        ds.Rows, ds.Columns = 48, 48
        ds.PixelData = np.full((48, 48), 1024, dtype=np.uint16).tobytes()

    edit_series(paths[3:4], shrink)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("truncated_pixel_data", "DICOM", Expected(4, InvalidCTError, "Cannot decode the pixel data"))
def _truncated(tmp: Path) -> Prepared:
    """One file cut short (an interrupted copy)."""
    paths = write_scan(tmp / "s")
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) - 5000])
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("corrupt_file_in_series", "DICOM", Expected(4, InvalidCTError, "could not be read"))
def _corrupt_file(tmp: Path) -> Prepared:
    """The first slice overwritten with garbage after the DICM preamble (must not be silently dropped)."""
    paths = write_scan(tmp / "s")
    paths[0].write_bytes(b"\0" * 128 + b"DICM" + os.urandom(3000))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("wrong_transfer_syntax", "DICOM", Expected(4, InvalidCTError, "Cannot decode the pixel data"))
def _wrong_syntax(tmp: Path) -> Prepared:
    """The header says JPEG Lossless but the pixel data is raw."""
    paths = write_scan(tmp / "s")
    old = b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"
    new = b"\x02\x00\x10\x00UI\x16\x001.2.840.10008.1.2.4.70"
    for path in paths:
        data = path.read_bytes()
        assert data.count(old) == 1
        group_length = struct.unpack("<I", data[140:144])[0]  # (0002,0000) value
        data = data[:140] + struct.pack("<I", group_length + 2) + data[144:]
        path.write_bytes(data.replace(old, new))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("raw_values_without_rescale", "DICOM", Expected(4, InvalidCTError, "rescale intercept"))
def _no_rescale(tmp: Path) -> Prepared:
    """Stored values without RescaleIntercept (HU offset wrong by +1024)."""
    write_scan(tmp / "s", rescale=False)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("dicom_file_given_instead_of_folder", "DICOM", Expected(0, None, ""))
def _one_file_given(tmp: Path) -> Prepared:
    """The path of one .dcm file of the series: the whole series in its folder is loaded."""
    paths = write_scan(tmp / "s")
    return Prepared(["info", paths[0], "--json"], [tmp / "s"], check=expect_info_json(shape_kji=[24, 96, 96]))


# --------------------------------------------------------------------------- the corpus: volume files

@case("nifti_ras_orientation", "volume file", Expected(0, None, ""))
def _nifti_ras(tmp: Path) -> Prepared:
    """A NIfTI whose direction is RAS-aligned (x and y flipped relative to LPS)."""
    path = write_volume(tmp / "ras.nii.gz", scan_hu().astype(np.int16), origin=(140.0, 140.0, 0.0),
                        direction=np.diag([-1.0, -1.0, 1.0]))
    return Prepared(["info", path, "--json"], [path], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("flipped_z_nrrd", "volume file", Expected(0, None, ""))
def _flipped_z(tmp: Path) -> Prepared:
    """A NRRD stored feet-to-head reversed (negative slice direction)."""
    path = write_volume(tmp / "flip.nrrd", scan_hu()[::-1].astype(np.int16), origin=(0.0, 0.0, 69.0),
                        direction=np.diag([1.0, 1.0, -1.0]))
    return Prepared(["info", path, "--json"], [path], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("nan_inf_float_nrrd", "volume file", Expected(4, InvalidCTError, "NaN or infinite"))
def _nan(tmp: Path) -> Prepared:
    """A float NRRD with NaN and inf voxels."""
    hu = scan_hu()
    hu[3, 10, 10] = np.nan
    hu[4, 11, 11] = np.inf
    path = write_volume(tmp / "nan.nrrd", hu)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("constant_image", "volume file", Expected(4, InvalidCTError, "constant"))
def _constant(tmp: Path) -> Prepared:
    """Every voxel at -1000 HU (an empty reconstruction)."""
    path = write_volume(tmp / "flat.nrrd", np.full((24, 96, 96), -1000, dtype=np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("tiny_volume", "volume file", Expected(4, InvalidCTError, "too small"))
def _tiny(tmp: Path) -> Prepared:
    """A 6 x 16 x 16 volume."""
    path = write_volume(tmp / "tiny.nrrd", factory.phantom_hu(rows=16, cols=16, slices=6).astype(np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("huge_volume_header", "volume file", Expected(4, InvalidCTError, "too large"))
def _huge(tmp: Path) -> Prepared:
    """A NRRD header declaring 4096^3 voxels (128 GiB): refused from the header, nothing allocated."""
    (tmp / "huge.raw").write_bytes(b"\0" * 4096)
    path = tmp / "huge.nhdr"
    path.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 4096 4096 4096\nspacings: 1 1 1\n"
                    "encoding: raw\nendian: little\ndata file: huge.raw\n")
    return Prepared(analyze_argv(path, tmp / "out"), [path, tmp / "huge.raw"], tmp / "out")


@case("corrupt_nrrd", "volume file", Expected(3, UnsupportedInputError, "corrupt"))
def _corrupt_nrrd(tmp: Path) -> Prepared:
    """A NRRD whose header is garbage."""
    path = tmp / "broken.nrrd"
    path.write_bytes(b"NRRD0004\ntype: nonsense\nsizes: -3\n" + os.urandom(200))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("truncated_nrrd", "volume file", Expected(3, UnsupportedInputError, "corrupt or truncated"))
def _truncated_nrrd(tmp: Path) -> Prepared:
    """An uncompressed NRRD cut in half."""
    import SimpleITK as sitk

    path = tmp / "cut.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(scan_hu().astype(np.int16)), str(path), False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


# --------------------------------------------------------------------------- the corpus: 2D images

@case("png_16bit_info", "2D image", Expected(0, None, "2D slice image"))
def _png16(tmp: Path) -> Prepared:
    """A 16-bit grey PNG slice: described as a 2D export."""
    from PIL import Image

    path = tmp / "slice16.png"
    Image.fromarray(grey_slice_uint8().astype(np.uint16) * 257).save(path)
    return Prepared(["info", path], [path])


@case("png_where_scan_needed", "2D image", Expected(4, InvalidCTError, "at least 5 axial slices.*covidct classify"))
def _png_analyze(tmp: Path) -> Prepared:
    """A single exported PNG slice given to analyze, which needs a CT scan in HU."""
    from PIL import Image

    path = tmp / "slice.png"
    Image.fromarray(grey_slice_uint8()).save(path)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("colour_jpeg", "2D image", Expected(4, InvalidCTError, "colour image"))
def _colour_jpeg(tmp: Path) -> Prepared:
    """A colour JPEG (an annotated figure)."""
    from PIL import Image

    grey = grey_slice_uint8()
    rgb = np.stack([grey, grey, grey], axis=-1)
    rgb[20:40, 20:40] = (255, 0, 0)
    path = tmp / "figure.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    return Prepared(["info", path], [path])


@case("grey_jpeg_stored_as_rgb", "2D image", Expected(0, None, "2D slice image"))
def _grey_rgb(tmp: Path) -> Prepared:
    """A grey slice saved as a 3-channel PNG (R = G = B): accepted."""
    from PIL import Image

    grey = grey_slice_uint8()
    path = tmp / "grey_rgb.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    return Prepared(["info", path], [path])


# --------------------------------------------------------------------------- the corpus: weights

def classifier_weights(folder: Path) -> Path:
    """A classifier weights folder: a copy of the shipped one if present, else a stand-in.

    The stand-in has the shipped layout (manifest + .pt, sha256) with random weights of
    the real architecture, so every check in :mod:`covidct.weights` is exercised.
    """
    import torch

    from covidct.classify.network import build_network
    from covidct.weights import sha256_of, weights_dir

    folder.mkdir(parents=True, exist_ok=True)
    shipped = weights_dir() / "classifier.json"
    if shipped.exists():
        entry = json.loads(shipped.read_text())
        shutil.copy2(shipped, folder / "classifier.json")
        shutil.copy2(weights_dir() / entry["file"], folder / entry["file"])
        return folder
    torch.manual_seed(0)
    torch.save(build_network({}).state_dict(), folder / "classifier.pt")
    entry = {"file": "classifier.pt", "sha256": sha256_of(folder / "classifier.pt"), "version": "test",
             "config": {"network": {}, "input_size_px": 128}, "threshold": 0.5}
    (folder / "classifier.json").write_text(json.dumps(entry))
    return folder


def _classify_prepared(tmp: Path, weights: Path) -> Prepared:
    from PIL import Image

    image = tmp / "slice.png"
    Image.fromarray(grey_slice_uint8()).save(image)
    return Prepared(["classify", image, "--device", "cpu"], [image, weights],
                    env={"COVIDCT_WEIGHTS_DIR": weights}, runner=run_in_subprocess)


def _weights_file(weights: Path) -> Path:
    return weights / json.loads((weights / "classifier.json").read_text())["file"]


@case("weights_intact", "weights", Expected(0, None, r"p\(COVID-19\) = [01]\.\d{3}"))
def _weights_intact(tmp: Path) -> Prepared:
    """The control: an intact copy of the weights folder classifies the slice (so the failures below are the damage's)."""
    return _classify_prepared(tmp, classifier_weights(tmp / "weights"))


@case("weights_missing", "weights", Expected(5, WeightsError, "No weights manifest.*COVIDCT_WEIGHTS_DIR"))
def _weights_missing(tmp: Path) -> Prepared:
    """No model weights at all (empty weights folder)."""
    (tmp / "weights").mkdir()
    return _classify_prepared(tmp, tmp / "weights")


@case("weights_file_deleted", "weights", Expected(5, WeightsError, "is missing"))
def _weights_file_deleted(tmp: Path) -> Prepared:
    """The manifest is there but its .pt file was deleted."""
    weights = classifier_weights(tmp / "weights")
    _weights_file(weights).unlink()
    return _classify_prepared(tmp, weights)


@case("weights_truncated", "weights", Expected(5, WeightsError, "sha256 .* does not match the expected [0-9a-f]{64}"))
def _weights_truncated(tmp: Path) -> Prepared:
    """The weights file cut in half (an interrupted download)."""
    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _classify_prepared(tmp, weights)


@case("weights_wrong_checksum", "weights", Expected(5, WeightsError, "is corrupt or was replaced: sha256 [0-9a-f]{64}"))
def _weights_checksum(tmp: Path) -> Prepared:
    """One byte of the weights file changed (same size, different sha256)."""
    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return _classify_prepared(tmp, weights)


@case("weights_wrong_architecture", "weights", Expected(5, WeightsError, "do not fit the network architecture"))
def _weights_architecture(tmp: Path) -> Prepared:
    """Weights of another network, with a manifest whose sha256 matches them."""
    import torch

    from covidct.weights import sha256_of

    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    torch.save({"stem.weight": torch.zeros(3, 3), "head.bias": torch.zeros(7)}, path)
    manifest = json.loads((weights / "classifier.json").read_text())
    manifest["sha256"] = sha256_of(path)
    (weights / "classifier.json").write_text(json.dumps(manifest))
    return _classify_prepared(tmp, weights)


@case("weights_manifest_not_json", "weights", Expected(5, WeightsError, "not valid JSON"))
def _weights_manifest(tmp: Path) -> Prepared:
    """The weights manifest is not JSON (edited by hand, or truncated)."""
    weights = classifier_weights(tmp / "weights")
    (weights / "classifier.json").write_text('{"file": "classifier.pt", "sha256": ')
    return _classify_prepared(tmp, weights)


@case("enhancer_weights_missing", "weights", Expected(5, WeightsError, "No weights manifest"))
def _enhancer_missing(tmp: Path) -> Prepared:
    """covidct enhance with no enhancer weights: refused, and no output file."""
    (tmp / "weights").mkdir()
    path = write_volume(tmp / "scan.nrrd", scan_hu().astype(np.int16))
    return Prepared(["enhance", path, "-o", tmp / "out.nrrd", "--scale", "2", "--device", "cpu"],
                    [path], tmp / "out.nrrd", env={"COVIDCT_WEIGHTS_DIR": tmp / "weights"},
                    runner=run_in_subprocess)


# --------------------------------------------------------------------------- the corpus: devices

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


# --------------------------------------------------------------------------- the corpus: output and run control

@case("analysis_succeeds", "output", Expected(0, None, "COVID-19 probability"))
def _baseline(tmp: Path) -> Prepared:
    """The reference: a valid synthetic scan analysed end to end (stand-in models, enhancement on)."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "on", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, check=expect_complete_analysis)


@case("output_folder_exists", "output", Expected(7, OutputError, "already exists.*--overwrite"))
def _output_exists(tmp: Path) -> Prepared:
    """The output folder exists and holds files: refused, its content untouched."""
    write_scan(tmp / "s")
    (tmp / "out").mkdir()
    (tmp / "out" / "previous-result.json").write_text("{}")
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s", tmp / "out"], tmp / "out")


@case("output_folder_exists_overwrite", "output", Expected(0, None, ""))
def _output_overwrite(tmp: Path) -> Prepared:
    """The output folder exists and --overwrite is given: replaced by the new, complete result."""
    write_scan(tmp / "s")
    (tmp / "out").mkdir()
    (tmp / "out" / "stale.txt").write_text("old")

    def check(prepared, result):
        assert not (tmp / "out" / "stale.txt").exists()
        expect_complete_analysis(prepared, result)

    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--overwrite", "--enhance", "off", "--no-report"),
                    [tmp / "s"], tmp / "out", fakes=True, check=check)


@case("output_is_a_file", "output", Expected(7, OutputError, "is a file, not a folder"))
def _output_file(tmp: Path) -> Prepared:
    """-o names an existing file."""
    write_scan(tmp / "s")
    (tmp / "out").write_text("not a folder")
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s", tmp / "out"], tmp / "out")


@case("no_disk_space_result_json", "output", Expected(7, OutputError, "No space left on device"))
def _disk_full_json(tmp: Path) -> Prepared:
    """The disk fills up while result.json is written (ENOSPC, simulated): no half file, no output folder."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, patches=[disk_full_on_text_write])


@case("no_disk_space_volume", "output", Expected(7, OutputError, "No space left on device"))
def _disk_full_volume(tmp: Path) -> Prepared:
    """The disk fills up while a NRRD volume is written (ITK's error, simulated): no half file."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, patches=[disk_full_on_volume_write])


@case("cancel_mid_run", "run control", Expected(130, CancelledError, "cancelled"))
def _cancel(tmp: Path) -> Prepared:
    """SIGTERM (the Slicer module's Cancel) during the lung-mask stage: exit 130, nothing written."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, runner=run_cancelled_by_sigterm)


@case("two_analyses_at_once", "run control", Expected(0, None, "COVID-19 probability"))
def _two_at_once(tmp: Path) -> Prepared:
    """Two processes analyse the same scan into two folders at the same time: both complete, same numbers."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "on", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, runner=run_two_at_once, check=expect_complete_analysis)


# --------------------------------------------------------------------------- script entry

def _pause_after_lung_mask():
    """Hold the run inside the lung-mask stage until it is cancelled (for the SIGTERM case)."""
    import covidct.cli.analyze_command as analyze_command
    import covidct.preprocess.lung_mask as lung_mask
    from covidct.progress import CancelToken

    tokens = []

    class RecordingToken(CancelToken):
        def __init__(self):
            super().__init__()
            tokens.append(self)

    real = lung_mask.compute_lung_mask

    def compute(volume):
        mask = real(volume)
        print(READY_MARKER, flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(t.cancelled for t in tokens):
            time.sleep(0.05)
        return mask

    return [mock.patch.object(analyze_command, "CancelToken", RecordingToken),
            mock.patch.object(lung_mask, "compute_lung_mask", compute)]


def main(argv=None) -> int:
    from covidct import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        if "--pause-after-lung-mask" in argv:
            argv.remove("--pause-after-lung-mask")
            for patch in _pause_after_lung_mask():
                stack.enter_context(patch)
        if "--fake-models" in argv:
            argv.remove("--fake-models")
            stack.enter_context(fake_models())
        return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
