"""``covidct evaluate`` and ``covidct train-classifier`` (research: not in the Slicer extension)."""

from __future__ import annotations

from pathlib import Path

from ..cli.common import add_device_argument, add_json_argument, print_json
from ..paths import configs_dir
from .data_paths import default_data_dir


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="metrics of the shipped classifier on held-out data",
                              description="AUC with 95%% bootstrap CI, sensitivity, specificity, PPV, NPV, "
                                          "F1, confusion matrix, ROC and PR curves, at slice and scan level.")
    p.add_argument("--data", default=None, help="data folder (default: ../shared/data from the repository)")
    p.add_argument("-o", "--out", default="evaluation", help="folder for metrics.json and figures")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for AUC CIs")
    p.add_argument("--degraded", type=int, default=0, metavar="SCALE",
                   help="also compare classification of SCALE-times down-sampled vs enhanced inputs (e.g. 4)")
    p.add_argument("--degradation", choices=("x2", "x4", "x4_realistic"), default=None,
                   help="like --degraded, with a named condition of evaluate-enhancer "
                        "(x4_realistic: x4 + blur 0.6 px + noise 10 HU + JPEG 75)")
    p.add_argument("--weights-dir", default=None,
                   help="evaluate a model released into this folder instead of the shipped one")
    p.add_argument("--model-key", default="classifier", help="name of the model in --weights-dir (KEY.pt, KEY.json)")
    add_device_argument(p)
    add_json_argument(p)
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser("train-classifier", help="retrain the classifier (reproduces the shipped weights)",
                              description="Cache the normalised slices, train, and with --ship write "
                                          "weights/classifier.pt and its manifest.")
    p.add_argument("--config", default=str(configs_dir() / "classifier_ensemble.json"),
                   help="training config; the default is the shipped recipe (a seed ensemble of three CPU runs)")
    p.add_argument("--data", default=None, help="data folder (default: ../shared/data from the repository)")
    p.add_argument("--cache", default=None,
                   help="pre-processed slice cache (built when missing or made with other settings; "
                        "default: covidct_classifier_cache/slices<size>_<crop>.npz in the temp folder)")
    p.add_argument("--run-dir", default="runs/classifier", help="where model.pt and run.json go")
    p.add_argument("--ship", action="store_true", help="write the weights and manifest into the weights folder")
    p.add_argument("--weights-dir", default=None, help="weights folder (default: the shipped one)")
    p.add_argument("--threshold-from", choices=("hu_slices", "hu_scans", "validation_2d"), default=None,
                   help="operating threshold (default: the config's threshold_from, else validation_2d): Youden "
                        "point on the held-out HU slices (each scan scored by members that never saw it), the "
                        "midpoint between the pooled HU scans, or the Youden point on the held-out 2D slices")
    p.add_argument("--release-only", action="store_true", help="skip training; ship an existing run")
    p.set_defaults(handler=run_train)


def _data_root(args):
    return Path(args.data) if args.data else default_data_dir()


def run_evaluate(args) -> int:
    from .classifier.evaluation import evaluate

    result = evaluate(_data_root(args), args.out, args.device, args.bootstrap,
                      log=(lambda *_: None) if args.json else print,
                      degradation=args.degradation or args.degraded or None,
                      model_key=args.model_key, weights_directory=args.weights_dir)
    if args.json:
        print_json(result)
    return 0


def run_train(args) -> int:
    from .classifier.training import run_training
    from ..weights import weights_dir

    run_training(args.config, _data_root(args), args.run_dir, args.cache, args.release_only,
                 (args.weights_dir or weights_dir()) if args.ship else None, args.threshold_from)
    return 0
