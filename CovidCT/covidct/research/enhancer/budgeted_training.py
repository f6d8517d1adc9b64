"""``covidct train-enhancer --stage budgeted``: x4 fidelity training for as long as time allows.

The first recipe (:mod:`covidct.research.enhancer.training`) ran a fixed, short number of steps and
left the generator under-trained.  This one is sized by wall-clock time instead:

- **Resumable.** Every ``checkpoint_seconds`` the generator, its EMA copy, the optimiser,
  both random streams, the step and the elapsed training time go to ``checkpoint.pt`` in
  the run folder (written atomically).  Kill the process and start the same command again:
  it continues where the last checkpoint left off.  A checkpoint of another config is
  refused rather than silently mixed.
- **Schedule by budget.** Linear warm-up, then cosine decay over the budget's progress,
  which is ``max(step / max_steps, elapsed / max_seconds)``: a slower machine anneals over
  fewer steps instead of stopping mid-schedule.  ``elapsed`` counts the process's CPU
  seconds (``time.process_time``: core-seconds of compute), so other work on a shared
  machine does not shorten the training; the first runs (``enhancer_v2_c32``/``c64``)
  counted wall seconds, both under the same load.
- **EMA of the weights** (decay ``ema_decay``, warmed up as ``(1 + step) / (10 + step)``) is
  what is validated and exported.  Averaged weights do not match averaged batch-norm
  statistics, so the EMA copy's statistics are re-estimated on fixed training batches
  before it is scored or exported (:func:`refresh_batch_norm`, as stochastic weight
  averaging does); without it the EMA model scored near bicubic.
- **Validation curve.** Every ``validate_every`` steps the EMA generator restores whole
  slices of each validation patient (clean x4 area down-sampling, as the evaluation does) and
  PSNR/SSIM inside the body, with bicubic's, are appended to ``validation.jsonl``.
- **Data.** Patch pairs (original + thick-slice copy, plus coronal/sagittal reformats) from
  :func:`covidct.research.enhancer.data.pair_patch_cache`; the degradation mixture adds soft and sharp
  kernels, CT-textured noise, thick slices and JPEG.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ...errors import UnsupportedInputError
from ...io import write_text_atomic
from ...preprocess.body_mask import body_mask_per_slice
from ...preprocess.windowing import lung_window
from ...enhance import degradation as deg
from .data import load_patient_hu, pair_patch_cache
from ...enhance.generator import bicubic_upsample, build_generator
from .losses import pixel_loss
from .sampling import augment_pair, crop_pair
from .schedule import budget_lr, set_lr
from ...enhance.weights_io import write_generator_weights

CHECKPOINT_NAME = "checkpoint.pt"
CURVE_NAME = "validation.jsonl"


def config_fingerprint(config: dict) -> str:
    """What a checkpoint must match to be resumed: the recipe, not its name, budget or logging."""
    relevant = {k: v for k, v in config.items() if k not in ("name", "description")}
    budget = dict(relevant.get("budgeted", {}))
    for key in ("max_seconds", "max_steps", "log_every", "validate_every", "checkpoint_seconds"):
        budget.pop(key, None)
    relevant["budgeted"] = budget
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def make_pair_batch(pairs: np.ndarray, batch: int, scale: int, rng: np.random.Generator,
                    degradation_cfg: dict, patch_hr: int):
    """(low-resolution input, target) tensors; thick-slice samples take the pair's thick copy."""
    lows, highs = [], []
    for index in rng.integers(0, len(pairs), size=batch):
        pair = augment_pair(crop_pair(pairs[index].astype(np.float32), patch_hr, rng), rng)
        spec = deg.random_degradation(rng, scale, **degradation_cfg)
        source = pair[1] if spec.thick_slices > 1 else pair[0]
        lows.append(lung_window(deg.degrade_hu(source, spec, rng)))
        highs.append(lung_window(pair[0]))
    return torch.from_numpy(np.stack(lows)[:, None]), torch.from_numpy(np.stack(highs)[:, None])


class EMA:
    """Exponential moving average of a module's parameters and buffers (BN statistics too)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                self.shadow[key].copy_(value)

    def copy_to(self, module: torch.nn.Module) -> torch.nn.Module:
        module.load_state_dict(self.shadow)
        return module


@torch.no_grad()
def refresh_batch_norm(module: torch.nn.Module, batches, device) -> torch.nn.Module:
    """Re-estimate every batch-norm layer's running mean/variance from ``batches`` (inputs only)."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return module
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    module.train()
    for low in batches:
        module(low.to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    module.eval()
    return module


class ValidationSlices:
    """Whole slices of the validation patients, x4 area down-sampled, for the curve."""

    def __init__(self, data_dir, patients, count: int):
        self.items = []
        for patient in patients:
            volume = load_patient_hu(data_dir, patient)
            rows, cols = (volume.shape[1] // 4) * 4, (volume.shape[2] // 4) * 4
            body = body_mask_per_slice(volume[:, :rows, :cols])
            occupied = np.flatnonzero(body.mean(axis=(1, 2)) > 0.1)
            picks = occupied[np.linspace(0, len(occupied) - 1, count).round().astype(int)]
            for k in picks:
                hr = volume[k, :rows, :cols]
                self.items.append((patient, int(k), lung_window(deg.area_downsample(hr, 4)),
                                   lung_window(hr), body[k]))

    def score(self, generator: torch.nn.Module, device) -> dict:
        from .evaluation import slice_metrics

        generator.eval()
        per_patient = {}
        with torch.inference_mode():
            for patient, _, low, truth, body in self.items:
                tensor = torch.from_numpy(low[None, None])
                out = generator(tensor.to(device)).clamp(0, 1).cpu()[0, 0].numpy()
                base = bicubic_upsample(tensor, 4).clamp(0, 1)[0, 0].numpy()
                model, cubic = slice_metrics(out, truth, body), slice_metrics(base, truth, body)
                entry = per_patient.setdefault(patient, {"gain_psnr_body_db": [], "gain_ssim_body": [],
                                                         "psnr_body": []})
                entry["gain_psnr_body_db"].append(model["psnr_body"] - cubic["psnr_body"])
                entry["gain_ssim_body"].append(model["ssim_body"] - cubic["ssim_body"])
                entry["psnr_body"].append(model["psnr_body"])
        generator.train()
        return {p: {k: round(float(np.mean(v)), 4) for k, v in m.items()} for p, m in per_patient.items()}


class BudgetedRun:
    """One budgeted x4 fidelity run: data, loop, checkpoints, curve and export."""

    def __init__(self, config: dict, data_dir, run_dir, weights_dir=None,
                 log: Callable[[str], None] = print, device: str = "cpu"):
        if "budgeted" not in config:
            raise UnsupportedInputError(f"Config '{config.get('name')}' has no 'budgeted' section.")
        self.config = config
        self.cfg = config["budgeted"]
        self.data_dir = Path(data_dir)
        self.run_dir = Path(run_dir)
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.log = log
        self.device = torch.device(device)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = config_fingerprint(config)
        self.pairs: Optional[np.ndarray] = None  # set to train on given pairs instead of the patient cache

    def _pairs(self) -> np.ndarray:
        if self.pairs is not None:
            return self.pairs
        d = self.config["data"]
        pairs = pair_patch_cache(self.data_dir, d["train_patients"], d["patch_hr"], d["patches_per_slice"],
                                 self.config.get("seed", 0), d.get("min_mean_hu", -900.0), d.get("thick_slices", 3),
                                 d.get("reformat_share", 0.0), d.get("cache_dir"), log=self.log)
        self.log(f"{len(pairs)} training patch pairs of {d['patch_hr']} px from {d['train_patients']}")
        return pairs

    def _save_checkpoint(self, state: dict) -> None:
        path = self.run_dir / CHECKPOINT_NAME
        tmp = path.with_suffix(".partial")
        torch.save(state, tmp)
        tmp.replace(path)

    def _load_checkpoint(self) -> Optional[dict]:
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            raise UnsupportedInputError(
                f"{path} was written by another config (fingerprint {state.get('fingerprint')} vs "
                f"{self.fingerprint}). Use a new --work-dir, or delete the checkpoint to start over.")
        return state

    def _last_curve_row(self) -> Optional[dict]:
        path = self.run_dir / CURVE_NAME
        if not path.exists():
            return None
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def run(self, stop_at_step: Optional[int] = None) -> dict:
        """Train until the budget is spent (or ``stop_at_step``, as a kill after a checkpoint would)."""
        cfg = self.cfg
        torch.set_num_threads(int(self.config.get("threads", 1)))
        torch.manual_seed(self.config.get("seed", 0) + 11)
        gen_config = {**self.config["generator"], "scale": 4}
        generator = build_generator(gen_config).to(self.device)
        optimizer = torch.optim.Adam(generator.parameters(), lr=cfg["lr"], betas=(0.9, 0.99))
        rng = np.random.default_rng(self.config.get("seed", 0) + 110)
        ema = EMA(generator, cfg.get("ema_decay", 0.999))
        step, elapsed = 0, 0.0
        state = self._load_checkpoint()
        if state is not None:
            generator.load_state_dict(state["generator"])
            optimizer.load_state_dict(state["optimizer"])
            ema.shadow = state["ema"]
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
            self.log(f"resumed at step {step} after {elapsed:.0f}s of training")
        pairs = self._pairs()
        validation = ValidationSlices(self.data_dir, self.config["data"].get("validation_patients", []),
                                      int(cfg.get("validation_slices", 6)))
        degradation_cfg = dict(self.config.get("degradation", {}))
        max_steps, max_seconds = int(cfg["max_steps"]), float(cfg["max_seconds"])
        last_checkpoint, running = time.time(), None
        generator.train()

        def checkpoint():
            self._save_checkpoint({"fingerprint": self.fingerprint, "step": step, "elapsed": elapsed,
                                   "generator": generator.state_dict(), "optimizer": optimizer.state_dict(),
                                   "ema": ema.shadow, "numpy_rng": rng.bit_generator.state,
                                   "torch_rng": torch.get_rng_state()})

        norm_rng_seed = self.config.get("seed", 0) + 120
        norm_batches = int(cfg.get("batch_norm_batches", 16))

        def ema_model():
            """The EMA weights with batch-norm statistics measured for them (same batches every time)."""
            model = ema.copy_to(build_generator(gen_config).to(self.device))
            fixed = np.random.default_rng(norm_rng_seed)
            batches = [make_pair_batch(pairs, cfg["batch"], 4, fixed, degradation_cfg, self.config["data"]["patch_hr"])[0]
                       for _ in range(norm_batches)]
            return refresh_batch_norm(model, batches, self.device)

        def validate():
            if not validation.items:
                return None
            scored = validation.score(ema_model(), self.device)
            row = {"step": step, "elapsed_s": round(elapsed, 1), "patients": scored}
            with open(self.run_dir / CURVE_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            gains = ", ".join(f"{p} {m['gain_psnr_body_db']:+.2f} dB / {m['gain_ssim_body']:+.4f}"
                              for p, m in scored.items())
            self.log(f"[budgeted] step {step} validation (EMA, clean x4, body): {gains}")
            return row

        while step < min(max_steps, stop_at_step or max_steps) and elapsed < max_seconds:
            started = time.process_time()
            lr = budget_lr(step, elapsed, cfg)
            set_lr(optimizer, lr)
            low, high = make_pair_batch(pairs, cfg["batch"], 4, rng, degradation_cfg, self.config["data"]["patch_hr"])
            loss = pixel_loss(generator(low.to(self.device)), high.to(self.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update(generator, step)
            step += 1
            elapsed += time.process_time() - started
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % cfg.get("log_every", 50) == 0:
                self.log(f"[budgeted] step {step} L1 {running:.5f} lr {lr:.2e} {elapsed:.0f}/{max_seconds:.0f}s")
            if step % cfg.get("validate_every", 300) == 0:
                validate()
            if time.time() - last_checkpoint >= cfg.get("checkpoint_seconds", 120):
                checkpoint()
                last_checkpoint = time.time()
        checkpoint()
        final = validate() if step % cfg.get("validate_every", 300) else self._last_curve_row()
        export = ema_model().cpu()
        torch.save(export.state_dict(), self.run_dir / "generator_ema_refreshed.pt")
        summary = {"steps": step, "seconds": round(elapsed, 1), "final_l1": running, "fingerprint": self.fingerprint,
                   "final_validation": final["patients"] if final else None}
        write_text_atomic(self.run_dir / "summary_budgeted.json", json.dumps(summary, indent=2) + "\n")
        if self.weights_dir is not None:
            key = cfg.get("export_key", "enhancer_x4_fidelity")
            path = write_generator_weights(self.weights_dir, key, export, gen_config,
                                           training={"config": self.config.get("name"), "stage": "budgeted",
                                                     "train_patients": self.config["data"]["train_patients"],
                                                     **{k: v for k, v in summary.items() if k != "final_validation"}})
            self.log(f"exported {key} -> {path}")
        return summary
