"""The loaded models of one process, or of one cohort worker: each loaded once, on first use.

Why a store instead of module caches: whoever runs analyses (the CLI, a cohort worker, a
test) owns the models it uses and can hand in others (``analyze_scan(models=...)``).

Models are keyed by weights folder, device and manifest sha256, so pointing
``COVIDCT_WEIGHTS_DIR`` elsewhere (or replacing the weights) inside one process loads the
new model instead of reusing the old one.  Residency policy: the ``resident_classifiers``
(default 4) and ``resident_enhancers`` (default 1: on a GPU the generator shares memory
with the classifier) most recently used models stay loaded; loading one more drops the
least recently used.  A cohort worker keeps every enhancer scale it may need.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

CLASSIFIER_KEY = "classifier"


class _Resident:
    """At most ``limit`` loaded models, least recently used dropped first."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self.loaded: OrderedDict = OrderedDict()

    def get(self, key, load):
        if key in self.loaded:
            self.loaded.move_to_end(key)
            return self.loaded[key]
        while len(self.loaded) >= self.limit:
            self.loaded.popitem(last=False)
        self.loaded[key] = load()
        return self.loaded[key]


class ModelStore:
    """Classifier and enhancers from one weights folder (``None``: :func:`covidct.weights.weights_dir`)."""

    def __init__(self, weights_dir=None, device="auto", resident_classifiers: int = 4,
                 resident_enhancers: int = 1):
        self.weights_dir = weights_dir
        self.device = device
        self._classifiers = _Resident(resident_classifiers)
        self._enhancers = _Resident(resident_enhancers)

    def _folder(self) -> str:
        from . import weights

        return str(self.weights_dir) if self.weights_dir else str(weights.weights_dir())

    def _key(self, model_key: str, device) -> tuple:
        """(model key, device, folder, sha256); reading the manifest is cheap, loading is not."""
        from . import weights
        from .devices import select_device

        folder = self._folder()
        device = str(select_device(str(device or self.device)))
        return model_key, device, folder, weights.model_entry(model_key, folder)["sha256"]

    def classifier(self, device=None, model_key: str = CLASSIFIER_KEY):
        """The checksum-verified :class:`covidct.classify.Classifier` on ``device`` (default: the store's)."""
        key = self._key(model_key, device)
        return self._classifiers.get(key, lambda: _load_classifier(*key[:3]))

    def enhancer(self, scale: int, kind: str = "fidelity", device=None) -> tuple:
        """(generator, manifest entry) for ``scale`` and ``kind`` (see ``MODEL_KEYS``: x2 "gan" is x2 fidelity)."""
        from .enhance.inference import MODEL_KEYS

        key = self._key(MODEL_KEYS[(int(scale), kind)], device)
        return self._enhancers.get(key, lambda: _load_enhancer(*key[:3]))


def _load_classifier(model_key: str, device: str, folder: str):
    from . import weights
    from .classify.api import Classifier
    from .classify.network import build_network

    state, entry = weights.load_state_dict(model_key, folder)
    model = build_network(entry.get("config", {}).get("network", {}))
    weights.load_into(model, state, model_key)
    model.to(device).eval()
    return Classifier(model, entry, device)


def _load_enhancer(model_key: str, device: str, folder: str) -> tuple:
    import torch

    from .enhance.generator import fold_batch_norm
    from .enhance.weights_io import load_generator

    generator, entry = load_generator(model_key, folder)
    generator = fold_batch_norm(generator).to(device).to(memory_format=torch.channels_last)
    return generator, entry


_DEFAULT: Optional[ModelStore] = None


def default_store() -> ModelStore:
    """The process-wide store used by callers that pass none (the CLI, the web app's analyses).

    Every such caller looks it up when it needs a model, so this function is the one place
    where a test stands in other models for a whole command-line run.
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ModelStore()
    return _DEFAULT
