"""``covidct train-enhancer`` and ``covidct evaluate-enhancer`` (research: not in the Slicer extension)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli.common import add_device_argument, add_json_argument, print_json
from ..errors import UnsupportedInputError
from ..paths import configs_dir


def register(subparsers) -> None:
    t = subparsers.add_parser(
        "train-enhancer", help="train the enhancer (reproduces the shipped weights from a config)",
        description="Stages: fidelity (x4, L1), x2 (x2, L1, from the x4 trunk), refine (more x4 L1 steps), "
                    "features (self-supervised CT feature encoder), gan (feature + 1e-3 adversarial). "
                    "Writes weights/ and manifests.")
    t.add_argument("--config", default=str(configs_dir() / "enhancer_cpu.json"),
                   help="training config (default: configs/enhancer_cpu.json)")
    t.add_argument("--stage", action="append", choices=("budgeted", "resize", "fidelity", "x2", "refine", "features", "gan"),
                   help="run only these stages (repeatable; default: fidelity, x2, refine, features, gan in that "
                        "order). 'budgeted' (configs with a budgeted section) trains x4 for the config's wall-clock "
                        "budget and resumes from its checkpoint when run again; 'resize' (configs with a resize "
                        "section) turns the x4 fidelity generator's sub-pixel stages into resize-convolutions "
                        "before 'gan'")
    t.add_argument("--data", default=None, help="shared data folder (default: ../shared/data from the repository)")
    t.add_argument("--work-dir", default=None, help="checkpoints (default: <temporary folder>/covidct_enhancer_work/NAME)")
    t.add_argument("--weights-dir", default=None, help="where to export the weights (default: the weights folder)")
    add_device_argument(t)
    t.set_defaults(handler=run_train)

    e = subparsers.add_parser(
        "evaluate-enhancer", help="PSNR/SSIM of the enhancer vs bicubic and bilinear on a held-out scan",
        description="Down-samples a held-out HU scan (x2, x4 INTER_AREA and a realistic x4 with blur, noise and "
                    "JPEG), restores it and scores it in the lung window; writes JSON and a side-by-side PNG.")
    e.add_argument("--data", default=None, help="shared data folder (default: ../shared/data from the repository)")
    e.add_argument("--patient", default="P001", help="held-out patient folder under covid-ct-md (default: P001)")
    e.add_argument("--slice-step", type=int, default=4, help="use every Nth slice (default: 4)")
    e.add_argument("--conditions", nargs="+", default=["x2", "x4", "x4_realistic"],
                   choices=("x2", "x4", "x4_realistic", "x4_soft_kernel", "x4_sharp_kernel", "x4_low_dose",
                            "x4_thick_slice", "x4_jpeg"),
                   help="degradations to score (the x4_* single faults give the gain per degradation)")
    e.add_argument("--models", nargs="+", default=["fidelity", "gan"], choices=("fidelity", "gan"))
    e.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="generator arithmetic (auto: bf16 where the hardware has it; compare with fp32)")
    e.add_argument("--out", default="enhancer_evaluation", help="output folder for JSON and PNG")
    e.add_argument("--weights-dir", default=None, help="weights folder (default: the shipped weights)")
    e.add_argument("--no-lesion-check", action="store_true",
                   help="skip the classifier-score check on original vs restored x4 slices")
    e.add_argument("--update-manifests", action="store_true",
                   help="record the x4/x2 metrics in the weights manifests (maintainers)")
    add_device_argument(e)
    add_json_argument(e)
    e.set_defaults(handler=run_evaluate)


def run_train(args) -> int:
    from .enhancer.training import ALL_STAGES, STAGES, Trainer, load_config
    from ..weights import weights_dir

    config_path = Path(args.config)
    if not config_path.exists():
        raise UnsupportedInputError(f"Training config {config_path} does not exist.")
    from ..devices import select_device

    config = load_config(config_path)
    device = str(select_device(args.device))
    trainer = Trainer(config, data_dir=args.data, work_dir=args.work_dir,
                      weights_dir=args.weights_dir or weights_dir(), device=device,
                      log=lambda message: print(message, flush=True))
    stages = [s for s in ALL_STAGES if s in (args.stage or STAGES)]
    results = trainer.run(stages)
    print(json.dumps(results, indent=2, default=str))
    return 0


def run_evaluate(args) -> int:
    from .enhancer.evaluation import evaluate, format_table
    from ..enhance.weights_io import update_manifests_from_evaluation

    log = (lambda message: print(message, file=sys.stderr, flush=True))
    results = evaluate(data_dir=args.data, patient=args.patient, conditions=tuple(args.conditions),
                       models=tuple(args.models), slice_step=args.slice_step, out_dir=args.out,
                       device=args.device, weights_dir=args.weights_dir, log=log,
                       lesion_check=not args.no_lesion_check, precision=args.precision)
    if args.update_manifests:
        update_manifests_from_evaluation(results, args.weights_dir)
    if args.json:
        print_json(results)
    else:
        print(format_table(results))
        for path in results.get("outputs", []):
            print(f"wrote {path}")
    return 0
