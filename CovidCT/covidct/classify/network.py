"""GARCD's diagnosis network, sized for CPU, with a head that yields a class-activation map.

Layout as in GARCD: one convolution, four residual blocks (the first two with three
convolutions, the last two with four), two more convolutions, three fully connected
layers with dropout 0.2, softmax over {non-COVID, COVID-19}.

CAM choice: the three fully connected layers are applied at *every position* of the last
feature map (as 1x1 convolutions, i.e. the same weights as FC layers) and the class
logits are the spatial average of the per-position logits.  Because averaging is the
last operation, the per-position COVID-minus-non-COVID logit map is an exact class
activation map (as with ai-corona's GAP + linear head), with no gradients needed, while
keeping GARCD's three FC layers.  Class order: index 0 = non-COVID, 1 = COVID-19.
"""

from __future__ import annotations

import torch
from torch import nn

CLASS_NAMES = ("non-COVID", "COVID-19")
DEFAULT_CONFIG = {
    "stem_channels": 16,
    "block_channels": [32, 48, 64, 96],
    "block_convs": [3, 3, 4, 4],
    "block_strides": [2, 2, 2, 1],
    "tail_channels": 128,
    "fc_channels": [64, 32],
    "dropout": 0.2,
}


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """``n_convs`` 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, n_convs: int, stride: int):
        super().__init__()
        layers = [_conv_bn_relu(cin, cout, stride)]
        for _ in range(n_convs - 2):
            layers.append(_conv_bn_relu(cout, cout))
        layers += [nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class DiagnosisNet(nn.Module):
    """Input ``(N, 1, H, W)`` in [0, 1]; output logits ``(N, 2)``; ``cam()`` gives ``(N, h, w)``."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG, **(config or {}))
        self.config = cfg
        self.stem = _conv_bn_relu(1, cfg["stem_channels"], stride=2, kernel=5)
        blocks, cin = [], cfg["stem_channels"]
        for cout, n, s in zip(cfg["block_channels"], cfg["block_convs"], cfg["block_strides"]):
            blocks.append(ResidualBlock(cin, cout, n, s))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        tail = cfg["tail_channels"]
        self.tail = nn.Sequential(_conv_bn_relu(cin, tail), _conv_bn_relu(tail, tail))
        fc1, fc2 = cfg["fc_channels"]
        # Three "fully connected" layers applied per position (1x1 convolutions).
        self.head = nn.Sequential(
            nn.Conv2d(tail, fc1, 1), nn.ReLU(inplace=True), nn.Dropout(cfg["dropout"]),
            nn.Conv2d(fc1, fc2, 1), nn.ReLU(inplace=True), nn.Dropout(cfg["dropout"]),
            nn.Conv2d(fc2, len(CLASS_NAMES), 1))

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position class logits ``(N, 2, h, w)``."""
        x = (x - 0.5) / 0.29  # equalised inputs are uniform on [0, 1]: mean 0.5, sd 0.29
        return self.head(self.tail(self.blocks(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).mean(dim=(2, 3))

    def forward_with_cam(self, x: torch.Tensor) -> tuple:
        """Logits and the COVID-19 activation map (COVID minus non-COVID logit per position)."""
        maps = self.logit_map(x)
        return maps.mean(dim=(2, 3)), maps[:, 1] - maps[:, 0]


class SeedEnsemble(nn.Module):
    """Identical networks trained with different seeds; their per-position logits are averaged.

    Averaging the logit maps (not the probabilities) keeps the head's property that the
    class logits are the spatial mean of the map, so the ensemble's CAM is still exact:
    the mean of the members' CAMs.
    """

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(config or {})
        count = int(cfg.pop("ensemble_members", 1))
        if count < 2:
            raise ValueError("a seed ensemble needs at least two members")
        self.members = nn.ModuleList(DiagnosisNet(cfg) for _ in range(count))
        self.config = dict(self.members[0].config, ensemble_members=count)

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.logit_map(x) for m in self.members]).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).mean(dim=(2, 3))

    def forward_with_cam(self, x: torch.Tensor) -> tuple:
        maps = self.logit_map(x)
        return maps.mean(dim=(2, 3)), maps[:, 1] - maps[:, 0]

    def subset(self, indices) -> nn.Module:
        """The ensemble of some members only (sharing their weights): one member is itself.

        Used to score a scan with the members that never saw it in training.
        """
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("a subset of an ensemble needs at least one member")
        if len(indices) == 1:
            return self.members[indices[0]]
        sub = SeedEnsemble(dict(self.config, ensemble_members=len(indices)))
        sub.members = nn.ModuleList(self.members[i] for i in indices)
        return sub


def held_out_members(member_hu_scans, scan: str) -> list:
    """Indices of the members whose training scans (one list per member) exclude ``scan``."""
    return [i for i, scans in enumerate(member_hu_scans) if scan not in set(scans)]


def build_network(config: dict | None = None) -> nn.Module:
    """One network, or a :class:`SeedEnsemble` when ``config["ensemble_members"] > 1``."""
    if int((config or {}).get("ensemble_members", 1)) > 1:
        return SeedEnsemble(config)
    return DiagnosisNet(config)


def ensemble_state_dict(member_states: list) -> dict:
    """The state dict of a :class:`SeedEnsemble` from its members' state dicts, in order."""
    return {f"members.{i}.{key}": value for i, state in enumerate(member_states) for key, value in state.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
