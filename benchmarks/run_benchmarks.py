"""Speed and memory benchmarks: numbers printed and written to JSON, never asserted.

Each benchmark runs in its own child process so its peak memory (RSS, and GPU memory
when a GPU is used) is its own.  Product paths are compared with a baseline measured in
the same run: the same weights in eager fp32 at batch size 1.

    python benchmarks/run_benchmarks.py                      # everything, device auto
    python benchmarks/run_benchmarks.py --only enhancer --device cpu
    python benchmarks/run_benchmarks.py --output benchmarks/results/cpu-2core.json

Benchmarks:
  analyze_sample   covidct analyze on the bundled 128² sample (stage seconds, peak memory)
  analyze_full     covidct analyze on a 512² x ~150-slice scan from ../shared/data (enhance off:
                   the quality gate skips it for full-resolution scans)
  enhancer         slices/s at x4 from 128² and x2 from 256² (product batch vs batch-1 baseline), and
                   the bound: the bare convolution stack (same architecture, random weights, BN
                   folded, channels-last, the product's precision) at the best of several batch
                   sizes, without I/O, windowing or the bicubic base
  classifier       slices/s of the classifier forward + CAM (product batch vs batch-1 baseline)
  classifier_input_size
                   slices/s of the shipped classifier's forward + CAM at other input sizes (the
                   network is fully convolutional), as a ratio to the shipped size: the speed half
                   of the input-resolution choice in weights/CLASSIFIER_CARD.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "CovidCT" / "Resources" / "SampleData" / "covidct-sample-P001-128.nrrd"
FULL_SCAN = REPO.parent / "shared" / "data" / "covid-ct-md" / "P001"
BENCHMARKS = ("analyze_sample", "analyze_full", "enhancer", "classifier", "classifier_input_size")
INPUT_SIZES_PX = (96, 128, 192, 256)


def _peak_memory(device) -> dict:
    import torch

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _timed(fn, repeats: int, device) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    import torch

    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_analyze(scan: Path, device_name: str, enhance: str) -> dict:
    from covidct.analyze import AnalysisOptions, analyze_scan
    from covidct.devices import select_device

    device = select_device(device_name)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = analyze_scan(scan, Path(tmp) / "out", AnalysisOptions(device=device_name, enhance=enhance))
        total = time.perf_counter() - start
    return {"scan": scan.name, "shape_kji": result.geometry.shape_kji, "enhance": enhance,
            "enhancement_applied": result.quality.enhancement_applied,
            "total_s": round(total, 2), "stages_s": result.timings_s, **_peak_memory(device)}


def bench_enhancer(device_name: str, slices: int) -> dict:
    """Product path (batched, BN folded, channels-last, bf16 where native) against the plain
    shipped generator in eager fp32 at batch size 1 - the same weights, the same run."""
    import numpy as np
    import torch

    from covidct.devices import select_device
    from covidct.enhance import enhance_volume
    from covidct.enhance.inference import MODEL_KEYS
    from covidct.enhance.weights_io import load_generator
    from covidct.volume import CTVolume

    device = select_device(device_name)
    out = {}
    rng = np.random.default_rng(0)
    for scale, side in ((4, 128), (2, 256)):
        volume = CTVolume(rng.uniform(-1000, 200, size=(slices, side, side)).astype(np.float32))
        plain, plain_entry = load_generator(MODEL_KEYS[(scale, "fidelity")])
        plain = plain.to(device)
        unit = torch.from_numpy(np.clip((volume.voxels + 1350) / 1500, 0, 1))[:, None].to(device)

        def baseline():
            with torch.no_grad():
                for k in range(slices):
                    plain(unit[k:k + 1])

        product_s = _timed(lambda: enhance_volume(volume, scale=scale, device=device_name), 1, device)
        baseline_s = _timed(baseline, 1, device)
        _, info = enhance_volume(volume, scale=scale, device=device_name)
        bound = _conv_stack_bound(plain_entry.get("config", {}), side, slices, device)
        out[f"x{scale}_from_{side}"] = {
            "slices": slices, "precision": info.get("precision"), "batch_size": info.get("batch_size"),
            "product_slices_per_s": round(slices / product_s, 2),
            "baseline_fp32_batch1_slices_per_s": round(slices / baseline_s, 2),
            "speedup_vs_baseline": round(baseline_s / product_s, 2),
            "bound_slices_per_s": bound["slices_per_s"], "bound_batch_size": bound["batch_size"],
            "product_share_of_bound": round((slices / product_s) / bound["slices_per_s"], 2)}
    out.update(_peak_memory(device))
    return out


def _conv_stack_bound(config: dict, side: int, slices: int, device) -> dict:
    """Best slices/s of the bare generator (random weights) over a few batch sizes."""
    import torch

    from covidct.enhance.generator import build_generator, fold_batch_norm
    from covidct.enhance.inference import reduced_precision_dtype

    torch.manual_seed(0)
    net = fold_batch_norm(build_generator(config).eval()).to(device).to(memory_format=torch.channels_last)
    dtype = reduced_precision_dtype(device, "auto")
    sizes = (8, 32, 64, 128) if device.type == "cuda" else (1, 4, 8)
    best = {"slices_per_s": 0.0, "batch_size": None}
    for batch in sizes:
        x = torch.rand(batch, 1, side, side, device=device).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                for _ in range(max(1, slices // batch)):
                    net.residual(x)

        rate = batch * max(1, slices // batch) / _timed(run, 1, device)
        if rate > best["slices_per_s"]:
            best = {"slices_per_s": round(rate, 2), "batch_size": batch}
    return best


def _shipped_classifier(device_name: str):
    """(device, shipped classifier, seeded random generator) for the classifier benchmarks."""
    import numpy as np

    from covidct.classify.api import load_classifier
    from covidct.devices import select_device

    return select_device(device_name), load_classifier(device_name), np.random.default_rng(0)


def bench_classifier(device_name: str, slices: int) -> dict:
    import numpy as np
    import torch

    device, clf, rng = _shipped_classifier(device_name)
    units = [rng.uniform(0, 1, size=(clf.size_px, clf.size_px)).astype(np.float32) for _ in range(slices)]
    product_s = _timed(lambda: clf.predict(units), 2, device)
    baseline_s = _timed(lambda: [clf.predict([u], batch_size=1) for u in units], 1, device)
    return {"slices": slices, "input_px": clf.size_px,
            "product_slices_per_s": round(slices / product_s, 1),
            "baseline_batch1_slices_per_s": round(slices / baseline_s, 1),
            "speedup_vs_baseline": round(baseline_s / product_s, 2),
            "threads": torch.get_num_threads(), **_peak_memory(device)}


def bench_classifier_input_size(device_name: str, slices: int) -> dict:
    import numpy as np
    import torch

    device, clf, rng = _shipped_classifier(device_name)
    per_s = {}
    for size in INPUT_SIZES_PX:
        units = [rng.uniform(0, 1, size=(size, size)).astype(np.float32) for _ in range(slices)]
        per_s[size] = slices / _timed(lambda: clf.predict(units), 2, device)
    shipped = per_s[clf.size_px] if clf.size_px in per_s else None
    return {"slices": slices, "shipped_input_px": clf.size_px,
            "slices_per_s": {str(k): round(v, 1) for k, v in per_s.items()},
            "time_ratio_to_shipped": {str(k): round(shipped / v, 2) for k, v in per_s.items()} if shipped else None,
            "threads": torch.get_num_threads(), **_peak_memory(device)}


def run_one(name: str, args) -> dict:
    if name == "analyze_sample":
        return bench_analyze(SAMPLE, args.device, "auto")
    if name == "analyze_full":
        if not FULL_SCAN.exists():
            return {"skipped": f"{FULL_SCAN} not found"}
        return bench_analyze(FULL_SCAN, args.device, "auto")
    if name == "enhancer":
        return bench_enhancer(args.device, args.slices)
    if name == "classifier":
        return bench_classifier(args.device, args.slices * 4)
    if name == "classifier_input_size":
        return bench_classifier_input_size(args.device, args.slices * 4)
    raise SystemExit(f"unknown benchmark {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--slices", type=int, default=16, help="slices per throughput measurement")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "latest.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return 0
    import torch

    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "device": args.device, "results": {}}
    for name in args.only or BENCHMARKS:
        command = [sys.executable, __file__, "--child", name, "--device", args.device,
                   "--slices", str(args.slices)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            report["results"][name] = {"error": done.stderr.strip().splitlines()[-1:]}
        else:
            report["results"][name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {json.dumps(report['results'][name])}", flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
