"""``covidct train-enhancer``: the recipe that reproduces the shipped enhancer weights.

Five stages, run in this order, each resumable from the previous stage's checkpoint in
the work folder:

1. ``fidelity`` - SRResNet x4 with the pixel (L1) loss, the paper's warm-up;
2. ``x2``       - the x2 generator, initialised from the x4 fidelity trunk, L1 loss;
3. ``refine``   - more L1 steps for the x4 fidelity model, with fewer extra degradations
   (optional: only when the config has a ``refine`` section);
4. ``features`` - the self-supervised CT feature encoder for the feature loss;
5. ``gan``      - fine-tune the (refined) x4 generator with feature loss + 1e-3 adversarial loss.

Configs with a ``resize`` section (GAN 2.2) add the stage ``resize``, run on request before
``gan``: the x4 fidelity generator's sub-pixel stages become resize-convolutions (started
from the mean of their phase kernels) and a short L1 stage adapts them; ``gan`` then starts
from that generator, whose up-sampling cannot make a grid from a flat input.

Configs with a ``budgeted`` section add the stage ``budgeted`` (run on request, not by
default): x4 fidelity training sized by wall-clock time, resumable, with EMA and a
validation curve (:mod:`covidct.research.enhancer.budgeted_training`); ``gan`` then starts from it.

Adam (0.9, 0.999), learning rate halved at fixed fractions of the steps.  Training is
deterministic for a given config on one CPU thread (seeded numpy and torch).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ...preprocess.windowing import lung_window
from ...enhance import degradation as deg
from ..data_paths import default_data_dir
from .data import load_patient_hu, patch_cache
from .discriminator import build_discriminator
from .feature_extractor import DEGRADATION_CLASSES, build_feature_encoder, frozen
from ...enhance.generator import bicubic_upsample, build_generator, resize_conv_from_subpixel
from .sampling import augment, crop
from .schedule import set_lr, step_decay_lr
from .losses import FeatureLoss, discriminator_loss, generator_adversarial_loss, pixel_loss
from ...enhance.weights_io import write_generator_weights

STAGES = ("fidelity", "x2", "refine", "features", "gan")
ALL_STAGES = ("budgeted", "resize") + STAGES
_BATCH_SEED_OFFSETS = {"fidelity": 100, "x2": 103, "refine": 104, "resize": 105}  # fixed: the shipped weights used these


def load_config(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def make_sr_batch(patches: np.ndarray, batch: int, scale: int, rng: np.random.Generator,
                  degradation_cfg: dict, patch_hr: Optional[int] = None):
    """(low-resolution input, high-resolution target) in the lung window, as tensors."""
    lows, highs = [], []
    for index in rng.integers(0, len(patches), size=batch):
        hr = augment(crop(patches[index].astype(np.float32), patch_hr or patches.shape[1], rng), rng)
        spec = deg.random_degradation(rng, scale, **degradation_cfg)
        lows.append(lung_window(deg.degrade_hu(hr, spec, rng)))
        highs.append(lung_window(hr))
    return (torch.from_numpy(np.stack(lows)[:, None]), torch.from_numpy(np.stack(highs)[:, None]))


def make_feature_batch(patches: np.ndarray, batch: int, patch: int, rng: np.random.Generator):
    """Self-supervised batch: each patch gets one degradation class, re-sampled to full size."""
    images, labels = [], []
    for index in rng.integers(0, len(patches), size=batch):
        hr = augment(crop(patches[index].astype(np.float32), patch, rng), rng)
        label = int(rng.integers(0, len(DEGRADATION_CLASSES)))
        name = DEGRADATION_CLASSES[label]
        if name in ("area_x2", "area_x4"):
            factor = 2 if name == "area_x2" else 4
            low = torch.from_numpy(lung_window(deg.area_downsample(hr, factor))[None, None])
            image = bicubic_upsample(low, factor)[0, 0].clamp(0, 1).numpy()
        elif name == "blur":
            image = lung_window(deg.gaussian_blur(hr, float(rng.uniform(0.7, 2.0))))
        elif name == "noise":
            image = lung_window(hr + rng.normal(0, rng.uniform(10, 40), hr.shape).astype(np.float32))
        elif name == "jpeg":
            image = deg.jpeg_roundtrip(lung_window(hr), int(rng.integers(15, 60)))
        else:
            image = lung_window(hr)
        images.append(image.astype(np.float32))
        labels.append(label)
    return torch.from_numpy(np.stack(images)[:, None]), torch.tensor(labels)


def psnr_unit(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(0, 1) - b) ** 2).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class Trainer:
    """Runs the stages of one config; checkpoints go to ``work_dir``, exports to ``weights_dir``."""

    def __init__(self, config: dict, data_dir=None, work_dir=None, weights_dir=None,
                 log: Callable[[str], None] = print, device: str = "cpu"):
        self.config = config
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.work_dir = Path(work_dir or Path(tempfile.gettempdir()) / "covidct_enhancer_work" / config.get("name", "enhancer"))
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.log = log
        self.device = torch.device(device)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._patches = None
        self._monitor = {}

    # -- data --------------------------------------------------------------------------
    def patches(self) -> np.ndarray:
        if self._patches is None:
            d = self.config["data"]
            self._patches = patch_cache(self.data_dir, d["train_patients"], d["patch_hr"],
                                        d["patches_per_slice"], self.config.get("seed", 0),
                                        d.get("min_mean_hu", -900.0), d.get("cache_dir"), log=self.log)
            self.log(f"{len(self._patches)} training patches of {d['patch_hr']} px from {d['train_patients']}")
        return self._patches

    def monitor_batch(self, scale: int, patch_hr: int):
        """Fixed clean x``scale`` patches of the held-out patient, only to log progress."""
        key = (scale, patch_hr)
        if key not in self._monitor:
            d = self.config["data"]
            rng = np.random.default_rng(12345)
            if "monitor" not in self._monitor:
                from .data import extract_patches
                volume = load_patient_hu(self.data_dir, d["validation_patient"])
                self._monitor["monitor"] = extract_patches(volume[::10], d["patch_hr"], 4, rng)
            patches = self._monitor["monitor"][:, :patch_hr, :patch_hr]
            low = np.stack([lung_window(deg.area_downsample(p.astype(np.float32), scale)) for p in patches])
            high = np.stack([lung_window(p.astype(np.float32)) for p in patches])
            self._monitor[key] = (torch.from_numpy(low[:, None]), torch.from_numpy(high[:, None]))
        return self._monitor[key]

    def _monitor_psnr(self, generator, scale: int, patch_hr: int) -> tuple:
        if not self.config["data"].get("validation_patient"):
            return float("nan"), float("nan")
        low, high = self.monitor_batch(scale, patch_hr)
        was_training = generator.training
        generator.eval()
        with torch.inference_mode():
            out = generator(low.to(self.device)).cpu()
            base = bicubic_upsample(low, scale)
        generator.train(was_training)
        return psnr_unit(out, high), psnr_unit(base, high)

    # -- checkpoints -----------------------------------------------------------------
    def _ckpt(self, name: str) -> Path:
        return self.work_dir / f"{name}.pt"

    def _save(self, name: str, module) -> None:
        tmp = self._ckpt(name).with_suffix(".partial")
        torch.save(module.state_dict(), tmp)
        tmp.replace(self._ckpt(name))

    def _load(self, name: str, module):
        path = self._ckpt(name)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the stage that makes it first")
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return module

    def _export(self, key: str, generator, gen_config: dict, stage: str, extra: dict) -> None:
        if self.weights_dir is None:
            return
        path = write_generator_weights(self.weights_dir, key, generator, gen_config,
                                       training={"config": self.config.get("name"), "stage": stage, **extra})
        self.log(f"exported {key} -> {path}")

    # -- stages ----------------------------------------------------------------------
    def _sr_loop(self, generator, cfg: dict, scale: int, stage: str, patch_hr: int,
                 init_lr_cfg: dict) -> dict:
        degradation_cfg = {**self.config.get("degradation", {}), **cfg.get("degradation", {})}
        rng = np.random.default_rng(self.config.get("seed", 0) + _BATCH_SEED_OFFSETS[stage])
        optimizer = torch.optim.Adam(generator.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
        generator.train()
        steps, start, running = int(cfg["steps"]), time.time(), None
        for step in range(steps):
            set_lr(optimizer, step_decay_lr(step, steps, init_lr_cfg))
            low, high = make_sr_batch(self.patches(), cfg["batch"], scale, rng, degradation_cfg, patch_hr)
            loss = pixel_loss(generator(low.to(self.device)), high.to(self.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if (step + 1) % cfg.get("log_every", 50) == 0 or step + 1 == steps:
                psnr, base = self._monitor_psnr(generator, scale, patch_hr)
                self.log(f"[{stage}] step {step + 1}/{steps} L1 {running:.5f} held-out x{scale} patches "
                         f"PSNR {psnr:.2f} dB (bicubic {base:.2f}) {time.time() - start:.0f}s")
        psnr, base = self._monitor_psnr(generator, scale, patch_hr)
        return {"steps": steps, "seconds": round(time.time() - start, 1), "final_l1": running,
                "monitor_psnr_db": round(psnr, 3), "monitor_bicubic_psnr_db": round(base, 3)}

    def _seed(self, offset: int) -> None:
        torch.manual_seed(self.config.get("seed", 0) + offset)

    def train_fidelity(self) -> dict:
        cfg = self.config["fidelity"]
        self._seed(1)
        gen_config = {**self.config["generator"], "scale": 4}
        generator = build_generator(gen_config).to(self.device)
        summary = self._sr_loop(generator, cfg, 4, "fidelity", self.config["data"]["patch_hr"], cfg)
        self._save("generator_x4_fidelity", generator)
        self._export("enhancer_x4_fidelity", generator, gen_config, "fidelity", summary)
        return summary

    def _x4_fidelity_checkpoint(self) -> str:
        """Where the GAN stage starts: the resize-convolution generator when the config has one."""
        return "generator_x4_resize" if self.config.get("resize") else self._x4_subpixel_checkpoint()

    def _x4_subpixel_checkpoint(self) -> str:
        if self.config.get("budgeted"):
            return "generator_x4_budgeted"
        return "generator_x4_refined" if self.config.get("refine") else "generator_x4_fidelity"

    def train_budgeted(self) -> dict:
        from .budgeted_training import BudgetedRun

        summary = BudgetedRun(self.config, self.data_dir, self.work_dir, self.weights_dir, self.log,
                              str(self.device)).run()
        # The exported generator (EMA weights, batch norm re-estimated) is where the GAN starts.
        (self.work_dir / "generator_ema_refreshed.pt").replace(self._ckpt("generator_x4_budgeted"))
        return summary

    def train_resize(self) -> dict:
        cfg = self.config["resize"]
        self._seed(6)
        gen_config = {**self.config["generator"], "scale": 4}
        if gen_config.get("upsample") != "resize_conv":
            raise ValueError("the resize stage needs generator.upsample = 'resize_conv' in the config")
        source = self._load(self._x4_subpixel_checkpoint(),
                            build_generator({**gen_config, "upsample": "subpixel"}))
        generator = build_generator(gen_config)
        trunk = {k: v for k, v in source.state_dict().items() if not k.startswith("upsample.")}
        missing, unexpected = generator.load_state_dict(trunk, strict=False)
        if unexpected or any(not k.startswith("upsample.") for k in missing):
            raise RuntimeError(f"fidelity checkpoint does not match the generator: {missing} {unexpected}")
        for old, new in zip(source.upsample, generator.upsample):
            resize_conv_from_subpixel(old, new)
        generator.to(self.device)
        summary = self._sr_loop(generator, cfg, 4, "resize", self.config["data"]["patch_hr"], cfg)
        self._save("generator_x4_resize", generator)
        return {**summary, "started_from": self._x4_subpixel_checkpoint()}

    def train_refine(self) -> dict:
        cfg = self.config.get("refine")
        if not cfg:
            return {"skipped": "no refine section in the config"}
        self._seed(5)
        gen_config = {**self.config["generator"], "scale": 4}
        generator = self._load("generator_x4_fidelity", build_generator(gen_config)).to(self.device)
        summary = self._sr_loop(generator, cfg, 4, "refine", self.config["data"]["patch_hr"], cfg)
        self._save("generator_x4_refined", generator)
        self._export("enhancer_x4_fidelity", generator, gen_config, "fidelity+refine",
                     {**summary, "fidelity_steps_before_refine": self.config["fidelity"]["steps"]})
        return summary

    def train_features(self) -> dict:
        cfg = self.config["features"]
        self._seed(2)
        encoder = build_feature_encoder(cfg).to(self.device)
        optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
        rng = np.random.default_rng(self.config.get("seed", 0) + 2)
        steps, start, running, accuracy = int(cfg["steps"]), time.time(), None, None
        for step in range(steps):
            set_lr(optimizer, step_decay_lr(step, steps, cfg))
            images, labels = make_feature_batch(self.patches(), cfg["batch"], cfg["patch"], rng)
            logits = encoder(images.to(self.device))
            loss = torch.nn.functional.cross_entropy(logits, labels.to(self.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            hit = (logits.argmax(1).cpu() == labels).float().mean().item()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            accuracy = hit if accuracy is None else 0.98 * accuracy + 0.02 * hit
            if (step + 1) % cfg.get("log_every", 50) == 0 or step + 1 == steps:
                self.log(f"[features] step {step + 1}/{steps} CE {running:.4f} accuracy {accuracy:.3f} "
                         f"{time.time() - start:.0f}s")
        self._save("feature_encoder", encoder)
        return {"steps": steps, "seconds": round(time.time() - start, 1), "final_ce": running,
                "train_accuracy": accuracy}

    def train_gan(self) -> dict:
        cfg = self.config["gan"]
        self._seed(3)
        gen_config = {**self.config["generator"], "scale": 4}
        generator = self._load(self._x4_fidelity_checkpoint(), build_generator(gen_config)).to(self.device)
        encoder = frozen(self._load("feature_encoder", build_feature_encoder(self.config["features"])))
        feature_loss = FeatureLoss(encoder.to(self.device), self.config["features"].get("layers", [1, 2]))
        discriminator = build_discriminator(cfg.get("discriminator", {})).to(self.device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
        rng = np.random.default_rng(self.config.get("seed", 0) + 3)
        w_feat, w_adv, w_pix = cfg["feature_weight"], cfg["adversarial_weight"], cfg.get("pixel_weight", 0.0)
        steps, start = int(cfg["steps"]), time.time()
        run = {"feature": None, "adversarial": None, "pixel": None, "d": None}

        def smooth(name, value):
            run[name] = value if run[name] is None else 0.95 * run[name] + 0.05 * value

        generator.train()
        discriminator.train()
        for step in range(steps):
            lr = step_decay_lr(step, steps, cfg)
            set_lr(opt_g, lr)
            set_lr(opt_d, lr)
            low, high = make_sr_batch(self.patches(), cfg["batch"], 4, rng, self.config.get("degradation", {}))
            low, high = low.to(self.device), high.to(self.device)
            fake = generator(low)
            # Discriminator step.
            d_loss = discriminator_loss(discriminator(high), discriminator(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # Generator step: feature + 1e-3 adversarial (+ small pixel anchor).
            f_loss = feature_loss(fake, high)
            a_loss = generator_adversarial_loss(discriminator(fake))
            p_loss = pixel_loss(fake, high)
            g_loss = w_feat * f_loss + w_adv * a_loss + w_pix * p_loss
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            for name, value in (("feature", f_loss), ("adversarial", a_loss), ("pixel", p_loss), ("d", d_loss)):
                smooth(name, value.item())
            if (step + 1) % cfg.get("log_every", 25) == 0 or step + 1 == steps:
                psnr, base = self._monitor_psnr(generator, 4, self.config["data"]["patch_hr"])
                self.log(f"[gan] step {step + 1}/{steps} feature {run['feature']:.5f} adv {run['adversarial']:.3f} "
                         f"L1 {run['pixel']:.5f} D {run['d']:.3f} held-out PSNR {psnr:.2f} (bicubic {base:.2f}) "
                         f"{time.time() - start:.0f}s")
        psnr, base = self._monitor_psnr(generator, 4, self.config["data"]["patch_hr"])
        summary = {"steps": steps, "seconds": round(time.time() - start, 1), "final_losses": dict(run),
                   "monitor_psnr_db": round(psnr, 3), "monitor_bicubic_psnr_db": round(base, 3),
                   "loss_weights": {"feature": w_feat, "adversarial": w_adv, "pixel": w_pix}}
        self._save("generator_x4_gan", generator)
        self._save("discriminator_x4", discriminator)
        self._export("enhancer_x4_gan", generator, gen_config, "gan", summary)
        return summary

    def train_x2(self) -> dict:
        cfg = self.config["x2"]
        self._seed(4)
        gen_config = {**self.config["generator"], "scale": 2}
        generator = build_generator(gen_config)
        if cfg.get("init_from_x4", True):
            x4 = self._load("generator_x4_fidelity", build_generator({**self.config["generator"], "scale": 4}))
            state = {k: v for k, v in x4.state_dict().items() if not k.startswith("upsample.1.")}
            generator.load_state_dict(state)
        generator.to(self.device)
        summary = self._sr_loop(generator, cfg, 2, "x2", cfg.get("patch_hr", 64), cfg)
        self._save("generator_x2_fidelity", generator)
        self._export("enhancer_x2_fidelity", generator, gen_config, "x2", summary)
        return summary

    def run(self, stages=STAGES) -> dict:
        torch.set_num_threads(int(self.config.get("threads", 1)))
        results = {}
        for stage in stages:
            self.log(f"== stage {stage} ==")
            results[stage] = getattr(self, f"train_{stage}")()
            (self.work_dir / f"summary_{stage}.json").write_text(json.dumps(results[stage], indent=2))
        return results
