"""Learning-rate schedules of the enhancer recipes: step decay (first recipe) and budgeted cosine."""

from __future__ import annotations

import math


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def step_decay_lr(step: int, steps: int, cfg: dict) -> float:
    """``lr`` multiplied by ``decay_factor`` at each fraction ``decay_at`` of the steps, after an
    optional linear warm-up over ``warmup_steps`` (0 by default, as the first recipes ran)."""
    warmup = int(cfg.get("warmup_steps", 0))
    factor = (step + 1) / warmup if step < warmup else 1.0
    for fraction in cfg.get("decay_at", [0.5, 0.75]):
        if step >= fraction * steps:
            factor *= cfg.get("decay_factor", 0.5)
    return cfg["lr"] * factor


def budget_lr(step: int, elapsed: float, cfg: dict) -> float:
    """Warm-up then cosine decay over the budget's progress (steps or seconds, whichever is further)."""
    warmup = int(cfg.get("warmup_steps", 100))
    if step < warmup:
        return cfg["lr"] * (step + 1) / warmup
    progress = max(step / float(cfg["max_steps"]), elapsed / float(cfg["max_seconds"]))
    progress = min(1.0, max(0.0, progress))
    floor = float(cfg.get("min_lr", cfg["lr"] * 0.01))
    return floor + 0.5 * (cfg["lr"] - floor) * (1.0 + math.cos(math.pi * progress))
