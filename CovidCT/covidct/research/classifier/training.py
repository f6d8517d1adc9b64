"""Train the diagnosis network on every source, validate across sources.

Sampling: each batch draws its source uniformly among the training sources and the class
uniformly within the source, so "which source" carries no label information (a source
shortcut cannot lower the loss) and the small sources are not drowned by SARS.

Splits (all seeded, stored in the run report):
* ``sars``: random 85/15 split of slices; no patient IDs, so the 15 % is *not* patient-
  independent and its numbers are optimistic.
* ``ucsd``: 80/20 split grouped by preprint (COVID) / image (non-COVID) when trained on,
  or entirely held out.
* ``hu``: the COVID-CT-MD scans listed in ``train.hu_scans`` are trained on; the others
  are held out and scored as whole scans (slice scores and every pooling).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ...classify import metrics, pooling
from .augment import augment_slice
from ...classify.input_normalisation import standardise
from ...classify.network import build_network, count_parameters, ensemble_state_dict

DEFAULT_TRAINING = {
    "name": "classifier",
    "version": "1.0.0",
    "input_size_px": 128,
    "network": {},
    "train": {"sars": True, "ucsd": True, "hu_scans": []},
    "sars_val_fraction": 0.15,
    "ucsd_val_fraction": 0.2,
    "split_seed": 0,
    "seed": 0,
    "steps": 1000,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "final_learning_rate": 1e-5,
    "augment": {},
    "threads": 1,
    "device": "cpu",
    "eval_every": 250,
    "max_minutes": 20,
    "source_weights": None,
    "standardisation": "equalise",
    "crop": "slice",
    "min_lung_fraction": 0.25,
}


def load_config(path) -> dict:
    cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    merged = dict(DEFAULT_TRAINING, **cfg)
    merged["train"] = dict(DEFAULT_TRAINING["train"], **cfg.get("train", {}))
    return merged


def _group_split(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean 'is validation' per item, whole groups at a time."""
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(unique, size=int(round(fraction * unique.size)), replace=False).tolist())
    return np.array([g in chosen for g in groups], dtype=bool)


def make_splits(cache: dict, cfg: dict) -> dict:
    """Index arrays: ``train`` and each held-out set (``sars_val``, ``ucsd_val``/``ucsd``, ``hu:SCAN``)."""
    source, group, label = cache["source"], cache["group"], cache["label"]
    seed = cfg["split_seed"]
    splits, train = {}, []
    sars = np.flatnonzero(source == "sars")
    sars_val = _group_split(group[sars], cfg["sars_val_fraction"], seed)
    if cfg["train"]["sars"]:
        train.append(sars[~sars_val])
        splits["sars_val"] = sars[sars_val]
    else:
        splits["sars"] = sars
    ucsd = np.flatnonzero(source == "ucsd")
    if cfg["train"]["ucsd"]:
        ucsd_val = _group_split(group[ucsd], cfg["ucsd_val_fraction"], seed + 1)
        train.append(ucsd[~ucsd_val])
        splits["ucsd_val"] = ucsd[ucsd_val]
    else:
        splits["ucsd"] = ucsd
    fraction = cache.get("lung_fraction", np.ones(source.size, np.float32))
    enough_lung = fraction >= float(cfg.get("min_lung_fraction", 0.0)) - 1e-6
    for scan in np.unique(group[source == "hu"]):
        idx = np.flatnonzero((source == "hu") & (group == scan) & enough_lung)
        if scan in cfg["train"]["hu_scans"]:
            train.append(idx)
        else:
            splits[f"hu:{scan}"] = idx
    train = np.concatenate(train) if train else np.zeros(0, int)
    train = train[label[train] >= 0]
    # Sources with one class only are not trained on (see _batch_sampler); say so in the sizes.
    keep = np.ones(train.size, bool)
    for s in np.unique(source[train]):
        in_source = source[train] == s
        if np.unique(label[train][in_source]).size < 2:
            keep &= ~in_source
    splits["train"] = train[keep]
    return splits


def _batch_sampler(cache: dict, train_idx: np.ndarray, rng, source_weights: dict | None = None):
    """Yields index arrays: source by ``source_weights`` (default uniform), then class uniform."""
    source, label = cache["source"][train_idx], cache["label"][train_idx]
    pools = {}
    for s in np.unique(source):
        classes = {c: train_idx[(source == s) & (label == c)] for c in (0, 1)}
        if all(m.size for m in classes.values()):
            pools[s] = classes
        # A source with one class only (e.g. HU training scans that are all non-COVID) would
        # teach "this source = that class": it is left out of training.
    sources = sorted(pools)
    weights = np.array([float((source_weights or {}).get(s, 1.0)) for s in sources])
    weights /= weights.sum()

    def draw(batch_size):
        out = np.empty(batch_size, dtype=int)
        for b in range(batch_size):
            classes = pools[sources[rng.choice(len(sources), p=weights)]]
            members = classes[list(classes)[rng.integers(len(classes))]]
            out[b] = members[rng.integers(members.size)]
        return out

    return draw


def predict_unit_slices(model, unit_slices: np.ndarray, device="cpu", batch_size: int = 64,
                        with_cam: bool = False, standardisation: str = "equalise"):
    """COVID-19 probabilities for cropped unit slices (equalised here); optional CAMs."""
    import torch

    model.eval()
    probs, cams = [], []
    with torch.no_grad():
        for start in range(0, len(unit_slices), batch_size):
            chunk = np.stack([standardise(s, standardisation) for s in unit_slices[start:start + batch_size]])
            x = torch.from_numpy(chunk[:, None].astype(np.float32)).to(device)
            logits, cam = model.forward_with_cam(x)
            probs.append(torch.softmax(logits, 1)[:, 1].float().cpu().numpy())
            if with_cam:
                cams.append(cam.float().cpu().numpy())
    p = np.concatenate(probs) if probs else np.zeros(0, np.float32)
    if with_cam:
        return p, (np.concatenate(cams) if cams else np.zeros((0, 1, 1), np.float32))
    return p


def hu_slice_sets(infection, covid_scan, scores) -> dict:
    """(labels, scores) of the three HU slice rows: infected vs not; COVID-19-infected vs
    non-COVID scans; infected vs clean within COVID-19 scans.

    ``infection`` is each slice's infection label, ``covid_scan`` whether its scan is a COVID-19 scan.
    """
    infection, covid_scan = np.asarray(infection), np.asarray(covid_scan, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    sets = {"hu_infected_vs_not": (infection, scores)}
    infected_covid = (infection == 1) & covid_scan
    keep = infected_covid | ~covid_scan
    if keep.any():
        sets["hu_covid_infected_vs_noncovid"] = (infected_covid[keep], scores[keep])
    if covid_scan.any() and len(np.unique(infection[covid_scan])) == 2:
        sets["hu_covid_scan_infected_vs_clean"] = (infection[covid_scan], scores[covid_scan])
    return sets


def evaluate_splits(model, cache: dict, splits: dict, device="cpu", n_boot: int = 1000,
                    standardisation: str = "equalise", models: dict | None = None) -> dict:
    """Slice-level metrics per held-out set; scan-level pooling for held-out HU scans.

    ``models`` maps a split name to the model that scores it instead of ``model`` (the
    members of a leave-one-patient-out ensemble that never saw that scan).
    """
    images = cache["images"]
    out = {"slice": {}, "scans": {}}
    scores_by_set = {}
    for name, idx in splits.items():
        if name == "train" or idx.size == 0:
            continue
        p = predict_unit_slices((models or {}).get(name, model), images[idx].astype(np.float32), device,
                                standardisation=standardisation)
        scores_by_set[name] = (idx, p)
        if name.startswith("hu:"):
            scan = name[3:]
            out["scans"][scan] = {
                "covid_scan": bool(np.any(cache["label"][idx] != 0)),  # COVID-19 scans' slices are 1 or -1
                "slice_index": cache["slice_index"][idx].tolist(),
                "infection": cache["infection"][idx].tolist(),
                "scores": [round(float(v), 5) for v in p],
                "pooled": {m: pooling.pool(p, m) for m in pooling.POOLING_FUNCTIONS},
            }
        else:
            lab = cache["label"][idx]
            out["slice"][name] = metrics.summary(lab, p, 0.5, n_boot)
            out.setdefault("raw", {})[name] = {"labels": lab.tolist(),
                                               "scores": [round(float(v), 5) for v in p]}
    hu = [k for k in scores_by_set if k.startswith("hu:")]
    if hu:
        idx = np.concatenate([scores_by_set[k][0] for k in hu])
        p = np.concatenate([scores_by_set[k][1] for k in hu])
        covid_scan = cache["label"][idx] != 0  # COVID-19 scans' slices (1 infected, -1 clear)
        for row, (labels, scores) in hu_slice_sets(cache["infection"][idx], covid_scan, p).items():
            out["slice"][row] = metrics.summary(labels, scores, 0.5, n_boot)
    return out


def check_training_sources(cfg: dict, cache: dict) -> None:
    """Refuse a config that trains on a source or HU scan the data folder does not hold."""
    source, group = cache["source"], cache["group"]
    missing = [name for name in ("sars", "ucsd") if cfg["train"].get(name) and not np.any(source == name)]
    missing += [scan for scan in cfg["train"].get("hu_scans", []) if not np.any((source == "hu") & (group == scan))]
    if missing:
        from ...errors import InputNotFoundError

        raise InputNotFoundError(f"The config trains on {', '.join(missing)}, which the data folder does not "
                                 "hold. Point --data at a folder that does, or change 'train' in the config.")


def training_environment() -> dict:
    """Versions that decide a training run's numbers, recorded in ``run.json``.

    One CPU thread makes a run deterministic on one installation, but other versions of
    torch, NumPy, SciPy (rotation, zoom) or Pillow (JPEG augmentation) change the
    augmented pixels and so the weights; this tells a rerun that differs why it may.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out = {"python": platform.python_version(), "machine": platform.machine(),
           "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for package in ("torch", "numpy", "scipy", "pillow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def train(cfg: dict, cache: dict, out_dir, log=print) -> dict:
    """Train one run; writes ``model.pt`` (fp16) and ``run.json`` into ``out_dir``."""
    import torch

    check_training_sources(cfg, cache)

    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = make_splits(cache, cfg)
    draw = _batch_sampler(cache, splits["train"], rng, cfg.get("source_weights"))
    model = build_network(cfg["network"]).to(cfg["device"])
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"])
    steps = int(cfg["steps"])
    ratio = cfg["final_learning_rate"] / cfg["learning_rate"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    images, labels = cache["images"], cache["label"]
    log(f"train slices {splits['train'].size}; held out: "
        + ", ".join(f"{k} {v.size}" for k, v in splits.items() if k != "train")
        + f"; parameters {count_parameters(model)}")
    history, start, running = [], time.time(), []
    for step in range(1, steps + 1):
        model.train()
        idx = draw(cfg["batch_size"])
        batch = np.stack([standardise(augment_slice(images[i].astype(np.float32), rng, cfg["augment"]),
                                      cfg.get("standardisation", "equalise")) for i in idx])
        x = torch.from_numpy(batch[:, None]).to(cfg["device"])
        y = torch.from_numpy(labels[idx].astype(np.int64)).to(cfg["device"])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        minutes = (time.time() - start) / 60
        if step % cfg["eval_every"] == 0 or step == steps or minutes > cfg["max_minutes"]:
            quick = evaluate_splits(model, cache, splits, cfg["device"], n_boot=0,
                                    standardisation=cfg.get("standardisation", "equalise"))
            entry = {"step": step, "minutes": round(minutes, 2), "loss": float(np.mean(running)),
                     "auc": {k: round(v["auc"], 4) for k, v in quick["slice"].items()},
                     "pooled": {s: round(v["pooled"]["top_k_mean"], 4) for s, v in quick["scans"].items()}}
            history.append(entry)
            running = []
            log(json.dumps(entry))
            if minutes > cfg["max_minutes"]:
                log(f"stopping at step {step}: time limit {cfg['max_minutes']} min")
                break
    final = evaluate_splits(model, cache, splits, cfg["device"], standardisation=cfg.get("standardisation", "equalise"))
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, out_dir / "model.pt")
    report = {"config": cfg, "history": history, "final": final, "steps_done": step,
              "minutes": round((time.time() - start) / 60, 2),
              "split_sizes": {k: int(v.size) for k, v in splits.items()},
              "environment": training_environment()}
    (out_dir / "run.json").write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    log(json.dumps(final["slice"], default=float)[:3000])
    log(json.dumps({s: v["pooled"] for s, v in final["scans"].items()}))
    return report


# Settings every member of a seed ensemble must share: otherwise the members would see
# different inputs, or the held-out sets of one member would be training data of another.
ENSEMBLE_SHARED_KEYS = ("network", "input_size_px", "crop", "min_lung_fraction", "standardisation",
                        "split_seed", "sars_val_fraction", "ucsd_val_fraction", "train")


def _training_settings(cfg: dict) -> str:
    """A config without its comments (keys starting with ``_``), which do not change training."""
    return json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=True)


def _shared_value(member_cfg: dict, key: str, per_member_hu: bool):
    value = member_cfg.get(key)
    if key == "train" and per_member_hu:  # leave-one-patient-out: only the HU scans may differ
        value = {k: v for k, v in value.items() if k != "hu_scans"}
    return json.dumps(value, sort_keys=True)


def member_configs(cfg: dict, config_path) -> list:
    """The member configs an ensemble config names (``ensemble_of``, paths relative to it).

    With ``held_out_per_member`` the members may train on different HU scans (each scan
    is then reported by the members that never saw it); everything else must agree.
    """
    folder = Path(config_path).resolve().parent
    members = [(Path(name).stem, load_config(folder / name)) for name in cfg["ensemble_of"]]
    if len(members) < 2:
        raise ValueError("ensemble_of must name at least two member configs")
    per_member_hu = bool(cfg.get("held_out_per_member"))
    for key in ENSEMBLE_SHARED_KEYS:
        values = {_shared_value(m, key, per_member_hu) for _, m in members}
        if len(values) > 1:
            raise ValueError(f"ensemble members differ in '{key}'; they must share it to be averaged "
                             "and evaluated on the same held-out data")
    return members


def train_ensemble(cfg: dict, config_path, cache: dict, out_dir, log=print) -> dict:
    """Train (or reuse) each member into ``out_dir/members/<config>``, then combine them.

    A member whose ``run.json`` holds exactly its config is reused, so an interrupted
    ensemble run resumes and a member trained on its own is not trained twice.  Writes the
    combined ``model.pt`` and ``run.json`` into ``out_dir``, as :func:`train` does.
    """
    import torch

    out_dir = Path(out_dir)
    reports, states = [], []
    members = member_configs(cfg, config_path)
    for name, member_cfg in members:
        member_dir = out_dir / "members" / name
        run_file = member_dir / "run.json"
        previous = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else None
        if previous is not None and (member_dir / "model.pt").exists() and \
                _training_settings(previous["config"]) == _training_settings(member_cfg):
            log(f"member {name}: reusing {member_dir}")
            reports.append(previous)
        else:
            log(f"member {name}: training (seed {member_cfg['seed']})")
            reports.append(train(member_cfg, cache, member_dir, log))
        states.append(torch.load(member_dir / "model.pt", map_location="cpu", weights_only=True))
    combined_cfg = combined_config(cfg, members)
    state = ensemble_state_dict(states)
    model = build_network(combined_cfg["network"])
    model.load_state_dict({k: v.float() for k, v in state.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, out_dir / "model.pt")
    splits, models = held_out_splits(model, cache, combined_cfg)
    final = evaluate_splits(model, cache, splits, "cpu",
                            standardisation=combined_cfg.get("standardisation", "equalise"), models=models)
    report = {"config": combined_cfg, "members": [{"config": name, "minutes": r["minutes"],
                                                   "steps_done": r["steps_done"],
                                                   "final_slice_auc": {k: v["auc"] for k, v in r["final"]["slice"].items()}}
                                                  for (name, _), r in zip(members, reports)],
              "final": final, "steps_done": sum(r["steps_done"] for r in reports),
              "minutes": round(sum(r["minutes"] for r in reports), 2),
              "split_sizes": {k: int(v.size) for k, v in splits.items()},
              "environment": [r.get("environment") for r in reports]}  # each member's; None: not recorded
    (out_dir / "run.json").write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    log(json.dumps({k: round(v["auc"], 4) for k, v in final["slice"].items()}))
    log(json.dumps({s: v["pooled"] for s, v in final["scans"].items()}))
    return report


# Ensemble-config keys that describe how the combined model is used, copied into its config.
ENSEMBLE_USE_KEYS = ("pooling", "threshold_from", "held_out_per_member")


def combined_config(cfg: dict, members: list) -> dict:
    """The training config of the combined ensemble (what its manifest records).

    For a leave-one-patient-out ensemble, ``train.hu_scans`` is every scan any member saw
    and ``member_hu_scans`` lists each member's, so each scan can be scored by the members
    that never saw it.
    """
    base = members[0][1]
    combined = dict(base, name=cfg.get("name", base["name"]), version=cfg.get("version", base["version"]),
                    network=dict(base["network"], ensemble_members=len(members)),
                    ensemble_of=list(cfg["ensemble_of"]), seed=[m["seed"] for _, m in members],
                    _comment=cfg.get("_comment", ""))
    combined.update({k: cfg[k] for k in ENSEMBLE_USE_KEYS if k in cfg})
    if cfg.get("held_out_per_member"):
        member_scans = [sorted(m["train"].get("hu_scans", [])) for _, m in members]
        combined["member_hu_scans"] = member_scans
        combined["train"] = dict(base["train"], hu_scans=sorted(set().union(*member_scans)))
    return combined


def held_out_splits(model, cache: dict, cfg: dict) -> tuple:
    """(splits, models): the config's held-out sets plus, for a leave-one-patient-out
    ensemble, every HU scan some member never saw, each with that sub-ensemble as its model.
    """
    from ...classify.network import held_out_members

    splits = make_splits(cache, cfg)
    member_scans = cfg.get("member_hu_scans")
    if not member_scans:
        return splits, {}
    every_scan = make_splits(cache, dict(cfg, train=dict(cfg["train"], hu_scans=[])))
    models = {}
    for name, idx in every_scan.items():
        if not name.startswith("hu:"):
            continue
        members = held_out_members(member_scans, name[3:])
        if members:
            splits[name], models[name] = idx, model.subset(members)
    return splits, models


# Keys of a ``from_release`` config that describe the config file itself, not the model.
FROM_RELEASE_KEYS = ("from_release",)


def from_release_config(config_path) -> dict:
    """A released model's training config with a ``from_release`` config's changes applied.

    Such a config re-releases existing weights under another use (standardisation,
    pooling, threshold source, version) without training, e.g. 1.3.1 = 1.3's weights with
    harmonised inputs.  The released folder is relative to the config file.
    """
    from ...weights import model_entry

    raw = json.loads(Path(config_path).read_text(encoding="utf-8"))
    folder = (Path(config_path).resolve().parent / raw["from_release"]).resolve()
    entry = model_entry("classifier", folder)
    changes = {k: v for k, v in raw.items() if k not in FROM_RELEASE_KEYS}
    return dict(entry["training_config"], **changes, released_from={"folder": raw["from_release"],
                                                                      "version": entry.get("version"),
                                                                      "sha256": entry["sha256"]})


def write_run_from_release(cfg: dict, config_path, out_dir) -> dict:
    """A run folder (``model.pt``, ``run.json``) holding the released weights unchanged, for :func:`release`."""
    import shutil

    from ...weights import verified_weights_path

    folder = (Path(config_path).resolve().parent / cfg["released_from"]["folder"]).resolve()
    path, entry = verified_weights_path("classifier", folder)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out_dir / "model.pt")
    report = {"config": cfg, "steps_done": entry.get("steps_done", 0), "minutes": entry.get("training_minutes", 0),
              "environment": entry.get("training_environment"), "final": {}}
    (out_dir / "run.json").write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    return report


def run_training(config_path, data_root, run_dir, cache_path=None, release_only: bool = False,
                 ship_to=None, threshold_from=None) -> None:
    """``covidct train-classifier``: cache, then train (or re-release), then optionally ship to ``ship_to``."""
    import torch

    from .datasets import ensure_cache
    from .release import release

    cfg = load_config(config_path)
    if cfg.get("from_release"):  # existing weights re-released under another use: nothing is trained
        cfg = from_release_config(config_path)
    torch.set_num_threads(int(cfg["threads"]))
    cache = ensure_cache(data_root, int(cfg["input_size_px"]), cfg["crop"], cache_path)
    if cfg.get("released_from"):
        write_run_from_release(cfg, config_path, run_dir)
    elif not release_only:
        if cfg.get("ensemble_of"):
            train_ensemble(cfg, config_path, cache, run_dir)
        else:
            train(cfg, cache, run_dir)
    if ship_to is not None:
        release(run_dir, ship_to, cache, cfg["name"], threshold_from)
