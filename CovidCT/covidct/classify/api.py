"""Classify scans and slice images with the shipped weights.

``classify_volume`` scores every lung-containing slice, pools the scores into one scan
probability (method and threshold come from the weights manifest, chosen on validation),
and builds the CAM heatmap on the CT grid.  ``classify_images`` scores 2D exports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from ..errors import InvalidCTError
from ..models import CLASSIFIER_KEY
from ..progress import silent
from ..volume import CTVolume
from . import pooling
from .cam import cam_volume
from .input_normalisation import (MIN_LUNG_PIXELS, crop_and_resize, lung_slices, slice_crop_boxes,
                                  standardise_with_estimate)

COVID, NON_COVID = "COVID-19", "non-COVID"
DEFAULT_THRESHOLD = 0.5
DEFAULT_POOLING = "top_k_mean"
# What a manifest without these keys was trained with (weights before version 1.1).
LEGACY_CROP, LEGACY_MIN_LUNG_FRACTION = "scan", 0.10


@dataclass
class ScanClassification:
    """One scan's result.  ``heatmap`` has the volume's shape (float32, [0, 1])."""

    covid_probability: float
    threshold: float
    decision: str
    per_slice: list
    heatmap: np.ndarray
    model: dict
    pooling: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary (the heatmap is written separately as a volume)."""
        return {
            "probabilities": {"covid19": self.covid_probability,
                              "non_covid": 1.0 - self.covid_probability},
            "decision": self.decision, "threshold": self.threshold, "pooling": self.pooling,
            "per_slice": self.per_slice, "model": self.model,
        }


def operating_point(entry: dict) -> dict:
    """Sensitivity/specificity the manifest records at its threshold, and where they come from."""
    source = entry.get("threshold_from", "")
    chosen = (entry.get("threshold_candidates") or {}).get(source) or {}
    point = {k: chosen[k] for k in ("sensitivity", "specificity", "ppv", "npv") if k in chosen}
    if point:
        point["measured_on"] = ", ".join(chosen.get("sets", [])) or source
    return point


class Classifier:
    """The network plus what the manifest says about using it (size, pooling, threshold)."""

    def __init__(self, model, entry: dict, device):
        self.model = model
        self.entry = entry
        self.device = device
        cfg = entry.get("config", {})
        self.size_px = int(cfg.get("input_size_px", 128))
        self.threshold = float(entry.get("threshold", DEFAULT_THRESHOLD))
        self.pooling = entry.get("pooling", DEFAULT_POOLING)
        self.standardisation = cfg.get("standardisation", "equalise")
        self.crop = cfg.get("crop", LEGACY_CROP)
        self.min_lung_fraction = float(cfg.get("min_lung_fraction", LEGACY_MIN_LUNG_FRACTION))
        self.info = {"name": entry.get("name", CLASSIFIER_KEY), "version": entry.get("version", ""),
                     "sha256": entry.get("sha256", ""), "operating_point": operating_point(entry)}

    def held_out_for(self, scan: str) -> Optional["Classifier"]:
        """This classifier restricted to the members that never saw HU scan ``scan`` in training.

        Itself when no member saw it; None when every member did (its scores would be
        in-sample).  How a leave-one-patient-out ensemble reports each shared scan.
        """
        from .network import held_out_members

        member_scans = self.entry.get("config", {}).get("member_hu_scans")
        if not member_scans:
            trained = self.entry.get("training_config", {}).get("train", {}).get("hu_scans", [])
            return None if scan in trained else self
        members = held_out_members(member_scans, scan)
        if not members:
            return None
        if len(members) == len(member_scans):
            return self
        held_out = Classifier(self.model.subset(members), self.entry, self.device)
        held_out.info["members"] = members
        return held_out

    def predict(self, unit_slices: list, batch_size: int = 32, cancel=None, progress=silent) -> Prediction:
        """COVID-19 probabilities, CAMs and harmonisations (see :class:`Prediction`) for cropped unit slices."""
        import torch

        probs, cams, harmonisations = [], [], []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(unit_slices), batch_size):
                if cancel is not None:
                    cancel.check("classification")
                standardised = [standardise_with_estimate(s, self.standardisation)
                                for s in unit_slices[start:start + batch_size]]
                harmonisations += [h for _, h in standardised]
                chunk = np.stack([image for image, _ in standardised])
                x = torch.from_numpy(chunk[:, None].astype(np.float32)).to(self.device)
                logits, cam = self.model.forward_with_cam(x)
                probs.append(torch.softmax(logits.float(), 1)[:, 1].cpu().numpy())
                cams.append(cam.float().cpu().numpy())
                progress(min(1.0, (start + batch_size) / max(1, len(unit_slices))), "classify slices")
        if not probs:
            return Prediction(np.zeros(0, np.float32), np.zeros((0, 1, 1), np.float32), [])
        return Prediction(np.concatenate(probs), np.concatenate(cams), harmonisations)


class Prediction(NamedTuple):
    """What :meth:`Classifier.predict` computed, per slice.

    ``harmonisations``: the window estimate each slice was harmonised with (None for a model
    that does not harmonise), so its report needs no second estimate.
    """

    probabilities: np.ndarray
    cams: np.ndarray
    harmonisations: list


def load_classifier(device="auto", model_key: str = CLASSIFIER_KEY, directory=None) -> Classifier:
    """The shipped classifier, checksum-verified: from the process-wide store, or loaded afresh from ``directory``."""
    from ..models import ModelStore, default_store

    store = ModelStore(directory) if directory else default_store()
    return store.classifier(device, model_key)


def _decide(probability: float, threshold: float) -> str:
    return COVID if probability >= threshold else NON_COVID


def classify_volume(volume: CTVolume, lung_mask: Optional[np.ndarray] = None, device="auto",
                    progress=None, cancel=None, cam_slices="all", classifier: Optional[Classifier] = None,
                    models=None) -> ScanClassification:
    """Scan-level COVID-19 probability, decision, per-slice scores and CAM heatmap.

    HU volumes: slices with too little lung (:func:`lung_slices`: under 64 pixels or under
    the manifest's ``min_lung_fraction`` of the largest lung section) are not scored
    (``in_lung`` False, ``covid19`` None); each slice is cropped as the weights were trained
    (the manifest's ``crop``: the slice's own lung box, or the scan's).  When no
    ``lung_mask`` is given it is computed.
    8-bit slice volumes (``is_hounsfield`` False): every slice is scored, cropped to the
    image content (or to ``lung_mask`` when given).  The input volume is not modified.
    ``classifier`` wins over ``models`` (a :class:`covidct.models.ModelStore`; default: the
    process-wide one), which is only asked for it here, when it is needed.
    """
    from ..models import default_store

    progress = progress or silent
    clf = classifier or (models or default_store()).classifier(device)
    shape = volume.shape
    if lung_mask is None and volume.is_hounsfield:
        from ..preprocess.lung_mask import compute_lung_mask

        progress(0.0, "lung mask")
        lung_mask = compute_lung_mask(volume)
    if lung_mask is not None:
        lung_mask = np.asarray(lung_mask, dtype=bool)
        if lung_mask.shape != shape:
            raise InvalidCTError(f"The lung mask's shape {lung_mask.shape} differs from the volume's {shape}.")
    wanted = set(range(shape[0])) if cam_slices == "all" else {int(k) for k in cam_slices}
    positions = volume.slice_positions_mm()
    units, boxes, scored = [], {}, []
    in_lung = np.ones(shape[0], dtype=bool)
    hu_boxes = {}
    if volume.is_hounsfield:
        in_lung = lung_slices(lung_mask, clf.min_lung_fraction)
        hu_boxes = slice_crop_boxes(lung_mask, np.flatnonzero(in_lung), clf.crop)
    for k in range(shape[0]):
        mask_k = lung_mask[k] if lung_mask is not None else None
        if not in_lung[k]:
            continue
        if not volume.is_hounsfield and mask_k is not None and int(np.count_nonzero(mask_k)) < MIN_LUNG_PIXELS:
            mask_k = None
        unit, box = crop_and_resize(volume.voxels[k], volume.is_hounsfield, mask_k, clf.size_px, hu_boxes.get(k))
        units.append(unit)
        boxes[k] = box
        scored.append(k)
    if not scored:
        raise InvalidCTError("No slice of this image contains lung; it cannot be classified. Is it a chest CT?")
    probs, cams, _ = clf.predict(units, cancel=cancel, progress=lambda f, s: progress(0.1 + 0.8 * f, s))
    scores = [None] * shape[0]
    for k, p in zip(scored, probs):
        scores[k] = float(p)
    per_slice = [{"index": k, "z_mm": round(float(positions[k]), 3),
                  "covid19": None if scores[k] is None else round(scores[k], 5),
                  "in_lung": bool(in_lung[k])} for k in range(shape[0])]
    probability = pooling.pool([scores[k] for k in range(shape[0])], clf.pooling)
    progress(0.9, "heatmap")
    heat_mask = lung_mask
    if heat_mask is None:  # 8-bit image without a mask: the crop box stands in for the lungs
        heat_mask = np.zeros(shape, dtype=bool)
        for k, (r0, r1, c0, c1) in boxes.items():
            heat_mask[k, r0:r1, c0:c1] = True
    heatmap = cam_volume({k: c for k, c in zip(scored, cams) if k in wanted},
                         boxes, shape, heat_mask)
    progress(1.0, "classified")
    return ScanClassification(
        covid_probability=float(probability), threshold=clf.threshold,
        decision=_decide(probability, clf.threshold), per_slice=per_slice, heatmap=heatmap,
        model=dict(clf.info), pooling=clf.pooling)


def _read_image_or_error(path) -> tuple:
    """(pixels, None) for a readable slice image, else (None, its per-file error entry)."""
    from ..errors import CovidCTError
    from ..io import read_slice_image

    try:
        return read_slice_image(path), None
    except CovidCTError as exc:
        return None, {"path": str(path), "error": str(exc), "error_type": type(exc).__name__,
                      "exit_code": exc.exit_code}


def classify_images(paths, device="auto", classifier: Optional[Classifier] = None, models=None) -> list[dict]:
    """Per-image COVID-19 probability for 2D lung-window slice exports (PNG/JPEG/WebP).

    One entry per path, in input order: a result (``path``, ``covid19``, ``non_covid``,
    ``decision``, ``threshold``) or, for a file refused with a :class:`CovidCTError`, an
    error entry (``path``, ``error``, ``error_type``, ``exit_code``); one bad file does not
    stop the batch.  Every image is read before the weights load, and when none is
    readable the weights are not loaded at all.  Weights and device errors still raise.
    ``classifier`` and ``models`` as for :func:`classify_volume`.
    """
    paths = list(paths)
    read = [_read_image_or_error(path) for path in paths]
    entries = [error for _, error in read]
    readable = [k for k, (pixels, _) in enumerate(read) if pixels is not None]
    if not readable:
        return entries
    from ..models import default_store

    clf = classifier or (models or default_store()).classifier(device)
    units = [crop_and_resize(read[k][0], False, None, clf.size_px)[0] for k in readable]
    prediction = clf.predict(units)
    for k, p, unit, used in zip(readable, prediction.probabilities, units, prediction.harmonisations):
        entries[k] = {"path": str(paths[k]), "covid19": round(float(p), 5), "non_covid": round(1 - float(p), 5),
                      "decision": _decide(float(p), clf.threshold), "threshold": clf.threshold,
                      **_export_window_report(unit, used)}
    return entries


def _export_window_report(unit: np.ndarray, used) -> dict:
    """The export's window as estimated from its histogram, with a warning when the score is unreliable.

    Reported for every model: ``used`` is the estimate a model with ``harmonise`` (or
    ``harmonise_gated``) mapped the image with before scoring (``harmonisation.applied``
    when any of it was applied; ``weight`` is the share), None for a model that does not
    harmonise, whose image is estimated here only for the report.
    """
    from .harmonise import estimate

    h = used if used is not None else estimate(unit)
    applied = used is not None and h.weight > 0
    out = {"harmonisation": dict(h.to_dict(), applied=bool(applied))}
    if not h.reliable:
        out["warning"] = ("the export's window could not be estimated from its histogram (no aerated lung "
                          "and soft tissue found); the score is less reliable")
    elif h.lung_detail_clipped:
        out["warning"] = ("the export's window clips the lungs to black (a mediastinal-like window): "
                          "lung texture is lost and the score is unreliable; export with a lung window")
    return out
