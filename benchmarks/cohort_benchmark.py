"""Cohort throughput: ``covidct batch`` against N sequential ``covidct analyze`` calls, same run.

Numbers, not assertions.  On the same generated cohort (synthetic 96² x 24 DICOM series
with different ground-glass balls, plus copies of the bundled 128² x 148 sample):

  sequential   N separate ``covidct analyze`` processes, one after another, all cores each:
               the baseline (each call pays process start, imports and model loading)
  batch 1x1    ``covidct batch`` with 1 worker of 1 thread      } scaling from 1 to 2 workers
  batch 2x1    ``covidct batch`` with 2 workers of 1 thread each } at one thread each
  batch 1x{T}  ``covidct batch`` with 1 worker using all T cores (same cores as 2x1, one worker)

Each batch's fixed cost (cluster start, worker start and model load, the tables) is its
wall time minus the scans' own seconds divided by the workers.

For each: wall seconds, scans per minute and the ratio to the baseline; plus the cost the
batch saves per scan (process start + imports + model load, measured) and the per-stage
seconds of the analyses, from which the GPU and cluster model at the end is computed.

    python benchmarks/cohort_benchmark.py [--synthetic 10] [--samples 2]
        [--output benchmarks/results/cpu-2core-cohort.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "CovidCT" / "Resources" / "SampleData" / "covidct-sample-P001-128.nrrd"
TESTS = REPO / "CovidCT" / "Testing" / "Python"
FAST_FLAGS = ["--device", "cpu", "--enhance", "off", "--no-report"]
CPU_STAGES = ("load", "lung mask", "quality", "quantify", "write")
GPU_STAGES = ("classify", "enhance")


def _env(threads: int) -> dict:
    env = dict(os.environ, COVIDCT_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "CovidCT"), env.get("PYTHONPATH", "")])
    return env


def build_inputs(root: Path, synthetic: int, samples: int) -> list:
    sys.path.insert(0, str(TESTS))
    import cohort_factory
    from bad_inputs.building import write_scan

    inputs = []
    for number in range(synthetic):
        folder = root / f"synthetic{number:02d}"
        write_scan(folder, hu=cohort_factory.lesion_phantom(2 * (number % 7)))
        inputs.append(folder)
    for number in range(samples):
        path = root / f"sample{number:02d}.nrrd"
        shutil.copy(SAMPLE, path)
        inputs.append(path)
    return inputs


def _timed(command, threads: int) -> float:
    began = time.perf_counter()
    done = subprocess.run(command, env=_env(threads), capture_output=True, text=True, cwd=REPO)
    if done.returncode not in (0, 8):
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stderr}")
    return time.perf_counter() - began


def sequential(inputs: list, out: Path, threads: int) -> float:
    return sum(_timed([sys.executable, "-m", "covidct", "analyze", path, "-o", out / path.name, "--progress", "none",
                       *FAST_FLAGS], threads) for path in inputs)


def batch(root: Path, out: Path, workers: int, threads: int) -> float:
    return _timed([sys.executable, "-m", "covidct", "batch", root, "-o", out, "--workers", str(workers),
                   "--threads-per-worker", str(threads), "--progress", "none", *FAST_FLAGS], threads)


def start_and_load_s(threads: int) -> float:
    """What one ``covidct analyze`` call pays before its first voxel: process, imports, weights."""
    code = ("import covidct.analyze, covidct.quantify, covidct.preprocess.lung_mask; "
            "from covidct.classify import load_classifier; load_classifier('cpu')")
    return _timed([sys.executable, "-c", code], threads)


def stage_seconds(out: Path) -> dict:
    """Median seconds per stage over the batch's results (one worker at a time per scan)."""
    timings = [json.loads(p.read_text())["timings_s"] for p in (out / "scans").glob("*/result.json")]
    stages = {name for t in timings for name in t}
    return {name: round(statistics.median(t.get(name, 0.0) for t in timings), 3) for name in sorted(stages)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=10, help="synthetic 96² x 24 DICOM series")
    parser.add_argument("--samples", type=int, default=2, help="copies of the bundled 128² x 148 sample")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "latest-cohort.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "CovidCT"))
    from covidct.devices import available_cpu_cores

    cores = available_cpu_cores()
    report = {"machine": {"platform": platform.platform(), "cores": cores,
                          "load_average_at_start": os.getloadavg()}, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cohort"
        inputs = build_inputs(root, args.synthetic, args.samples)
        n = len(inputs)
        report["scans"] = n
        overhead = start_and_load_s(cores)
        layouts = {"batch 1x1": (1, 1), f"batch {cores}x1": (cores, 1), f"batch 1x{cores}": (1, cores)}
        runs = {"sequential analyze": (sequential(inputs, Path(tmp) / "seq", cores), None)}
        for name, (workers, threads) in layouts.items():
            out = Path(tmp) / name.replace(" ", "_")
            seconds = batch(root, out, workers, threads)
            scans_s = [e["seconds"] for e in json.loads((out / "manifest.json").read_text())["scans"]]
            runs[name] = (seconds, round(seconds - sum(scans_s) / workers, 2))
        two_workers = Path(tmp) / f"batch_{cores}x1"
        stages = stage_seconds(two_workers)
        scan_s = statistics.median(e["seconds"] for e in json.loads((two_workers / "manifest.json").read_text())["scans"])
    baseline = runs["sequential analyze"][0]
    for name, (seconds, fixed_s) in runs.items():
        report["results"][name] = {"seconds": round(seconds, 2), "scans_per_minute": round(60 * n / seconds, 2),
                                   "speed_vs_sequential": round(baseline / seconds, 2)}
        if fixed_s is not None:
            report["results"][name]["fixed_cost_s"] = fixed_s
        print(f"{name:>20}: {seconds:7.1f} s  {60 * n / seconds:6.1f} scans/min  x{baseline / seconds:.2f}"
              + (f"  (fixed cost {fixed_s:.1f} s)" if fixed_s is not None else ""))
    one, two = runs["batch 1x1"][0], runs[f"batch {cores}x1"][0]
    report["scaling_1_to_2_workers"] = round(one / two, 2)
    print(f"scaling from 1 to {cores} workers (1 thread each): x{one / two:.2f}")
    cpu_s = sum(stages.get(s, 0.0) for s in CPU_STAGES)
    gpu_s = sum(stages.get(s, 0.0) for s in GPU_STAGES)
    report["per_call_start_and_model_load_s"] = round(overhead, 2)
    report["batch_median_scan_s"] = round(scan_s, 3)
    report["batch_median_stage_s"] = stages
    # A GPU speeds only the network stages; the CPU stages bound each GPU worker (Amdahl).
    report["model"] = {
        "cpu_stage_s_per_scan": round(cpu_s, 3), "network_stage_s_per_scan": round(gpu_s, 3),
        "gpu_worker_bound_scans_per_minute": round(60 / cpu_s, 1) if cpu_s else None,
        "cluster_scans_per_minute_per_worker": round(60 / scan_s, 1) if scan_s else None,
    }
    print(f"per-call start + imports + model load: {overhead:.1f} s (paid once per worker by batch)")
    print(f"median scan on a batch worker: {scan_s:.2f} s; stages {stages}")
    print(f"model: CPU stages {cpu_s:.2f} s, network stages {gpu_s:.2f} s per scan -> a GPU worker is bound at "
          f"{report['model']['gpu_worker_bound_scans_per_minute']} scans/min; a cluster of W such workers "
          f"~ W x {report['model']['cluster_scans_per_minute_per_worker']} scans/min")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
