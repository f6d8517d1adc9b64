"""The analysis result: what ``covidct analyze`` writes to ``result.json`` and every reader parses.

One typed description of the file, used by the writer (:mod:`covidct.analyze`), the report
(:mod:`covidct.report`), the CLI and the Slicer module (``CovidCTLib.result_import``), so
they cannot drift apart.  :meth:`AnalysisResult.from_json` checks the required fields and
their types and raises :class:`~covidct.errors.ResultFileError` naming what is wrong;
:meth:`AnalysisResult.to_json` writes the same keys and values ``analyze`` always wrote,
plus ``schema_version``.

Versions: 1 is every file without ``schema_version`` (it loads; absent optional fields
take their defaults); 2 adds ``schema_version`` and ``corads``, the CO-RADS-style
suggestion made where the result is made.  A file from a newer schema is refused.

Domain choices made once, here, for every reader: the key slices
(:func:`pick_key_slices`, also the fall-back for results that lack them) and the CO-RADS-style
suggestion (:func:`suggest_corads_for`, also computed for results that lack it).

Standard library only (plus the equally plain :mod:`covidct.decision` and
:mod:`covidct.study`), so the Slicer module can read results without the imaging stack.
Open-ended parts stay mappings on purpose: the quantification ``settings`` (provenance, free
form), the quality ``measures``, lesion evidence, and whatever the enhancer reports
(``extra``); unknown keys are kept in ``extra`` where a record has one, so a round trip
loses nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from . import __version__
from .decision import ScanDecision, decide
from .errors import ResultFileError
from .study import StudyFacts

SCHEMA_VERSION = 2
RESULT_NAME = "result.json"
KEY_SLICE_COUNT = 6
KEY_SLICE_MIN_GAP_MM = 10.0
SIDES = ("right", "left", "total")

# Field metadata: ``omit`` = left out of the JSON when None (keys ``analyze`` writes only
# sometimes); ``extra`` = the record's unknown keys, merged back on writing; ``json`` False
# = not in the file at all.
_OMIT = {"omit": True}
_EXTRA = {"extra": True}
_NOT_IN_JSON = {"json": False}


def _optional():
    return field(default=None, metadata=_OMIT)


def _extra():
    return field(default_factory=dict, metadata=_EXTRA)


class _Invalid(Exception):
    def __init__(self, message: str, missing=()):
        super().__init__(message)
        self.missing = tuple(missing)


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _expect(ok: bool, value, wanted: str, where: str) -> None:
    if not ok:
        raise _Invalid(f"{where or 'the file'} is {_type_name(value)} {value!r:.60}, expected {wanted}")


_HINTS: dict = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(tp, value, where: str):
    """``value`` (from JSON) checked against the type ``tp`` and turned into records."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin is Union:
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        if value == {} and dataclasses.is_dataclass(inner) and _required(inner):
            return None  # version-1 writers wrote {} for "none"
        return _decode(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return _from_mapping(tp, value, where)
    if tp is list or origin is list:
        _expect(isinstance(value, list), value, "a list", where)
        (item,) = typing.get_args(tp) or (Any,)
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        _expect(isinstance(value, dict), value, "an object", where)
        item = (typing.get_args(tp) or (str, Any))[1]
        return {str(k): _decode(item, v, _join(where, k)) for k, v in value.items()}
    if tp is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number", where)
    elif tp is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), value, "a whole number", where)
    elif tp is bool:
        _expect(isinstance(value, bool), value, "true or false", where)
    elif tp is str:
        _expect(isinstance(value, str), value, "a text", where)
    else:
        raise TypeError(f"covidct.result cannot read the type {tp!r}")
    return value


def _required(cls) -> list:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _from_mapping(cls, data, where: str):
    _expect(isinstance(data, dict), data, "an object", where)
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("json", True)]
    missing = [_join(where, name) for name in _required(cls) if name not in data]
    if missing:
        raise _Invalid(f"lacks {', '.join(missing)}", missing)
    kwargs = {f.name: _decode(hints[f.name], data[f.name], _join(where, f.name))
              for f in fields if not f.metadata.get("extra") and f.name in data}
    extra = [f.name for f in fields if f.metadata.get("extra")]
    if extra:
        known = {f.name for f in fields}
        kwargs[extra[0]] = {k: copy.deepcopy(v) for k, v in data.items() if k not in known}
    hook = getattr(cls, "_from_json_hook", None)
    if hook is not None:
        hook(kwargs, data)
    record = cls(**kwargs)
    check = getattr(record, "_check", None)
    if check is not None:
        check(where)
    return record


def _encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_mapping(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _to_mapping(record) -> dict:
    out = {}
    extra = {}
    for f in dataclasses.fields(record):
        if not f.metadata.get("json", True):
            continue
        value = getattr(record, f.name)
        if f.metadata.get("extra"):
            extra = _encode(value)
        elif not (value is None and f.metadata.get("omit")):
            out[f.name] = _encode(value)
    out.update({k: v for k, v in extra.items() if k not in out})
    hook = getattr(record, "_to_json_hook", None)
    return hook(out) if hook is not None else out


class _Record:
    """``to_dict``/``from_dict`` for the dataclasses below (and the plain ones they hold)."""

    def to_dict(self) -> dict:
        return _to_mapping(self)

    @classmethod
    def from_dict(cls, data, source: str = RESULT_NAME):
        try:
            return _from_mapping(cls, data, "")
        except _Invalid as exc:
            raise _file_error(source, exc) from None


def _file_error(source: str, exc: _Invalid) -> ResultFileError:
    if exc.missing:
        return ResultFileError(f"{source} {exc}: it was not written by 'covidct analyze' of a compatible "
                               f"version (result schema {SCHEMA_VERSION}). Re-run the analysis.", exc.missing)
    return ResultFileError(f"{source}: {exc}. Re-run the analysis.")


# --------------------------------------------------------------------------- the records

@dataclass
class Software(_Record):
    covidct: str = ""


@dataclass
class Probabilities(_Record):
    covid19: float
    non_covid: float


@dataclass
class SliceScore(_Record):
    """One slice: ``covid19`` is None where the slice holds no lung (not scored)."""

    index: int
    z_mm: float
    covid19: Optional[float] = None
    in_lung: Optional[bool] = None


@dataclass
class OperatingPoint(_Record):
    """What the model card measured at the decision threshold (all absent for an unmeasured model)."""

    sensitivity: Optional[float] = _optional()
    specificity: Optional[float] = _optional()
    ppv: Optional[float] = _optional()
    npv: Optional[float] = _optional()
    measured_on: Optional[str] = _optional()
    extra: dict = _extra()


@dataclass
class ModelInfo(_Record):
    """A model used: the classifier names itself ``name``, the enhancer ``model``."""

    name: Optional[str] = _optional()
    model: Optional[str] = _optional()
    version: Optional[str] = _optional()
    sha256: Optional[str] = _optional()
    operating_point: Optional[OperatingPoint] = _optional()
    extra: dict = _extra()

    @property
    def display_name(self) -> str:
        return self.name or self.model or ""


@dataclass
class Models(_Record):
    classifier: Optional[ModelInfo] = _optional()
    enhancer: Optional[ModelInfo] = _optional()  # absent when no enhancement was applied


@dataclass
class Enhancement(_Record):
    """Whether the enhancer ran and why; ``extra`` holds what it reported (scale, model, device...)."""

    applied: bool = False
    reason: str = ""
    extra: dict = _extra()


@dataclass
class Quality(_Record):
    """The quality gate's assessment plus what was done about it."""

    needs_enhancement: Optional[bool] = None
    suggested_scale: Optional[int] = None
    reasons: list[str] = field(default_factory=list)
    measures: dict = field(default_factory=dict)
    enhancement_applied: Optional[bool] = None
    enhancement: Optional[Enhancement] = None
    extra: dict = _extra()


@dataclass
class ZoneMeasures(_Record):
    volume_ml: float
    involvement_percent: float
    score: int


@dataclass
class LungMeasures(_Record):
    """One lung (``right``/``left``) or both (``total``); see :func:`covidct.quantify.quantify_lungs`.

    ``zones`` exist per lung only; ``vessel_ml`` and ``severity_max`` for ``total`` only.
    """

    volume_ml: float
    involvement_percent: float
    bands_percent: Optional[dict[str, float]] = _optional()
    ground_glass_percent: Optional[float] = _optional()
    consolidation_percent: Optional[float] = _optional()
    involved_ml: Optional[float] = _optional()
    involvement_without_vessel_filter_percent: Optional[float] = _optional()
    lesion_ground_glass_percent: Optional[float] = _optional()
    lesion_consolidation_percent: Optional[float] = _optional()
    zones: Optional[dict[str, ZoneMeasures]] = _optional()
    severity_score: Optional[int] = _optional()
    vessel_ml: Optional[float] = _optional()
    severity_max: Optional[int] = _optional()


@dataclass
class Distribution(_Record):
    bilateral: bool
    peripheral_share: Optional[float] = None  # None when nothing is involved


@dataclass
class Quantification(_Record):
    """HU quantification (absent for 8-bit images); ``settings`` is its free-form provenance."""

    right: LungMeasures
    left: LungMeasures
    total: LungMeasures
    per_slice_involvement_percent: list[Optional[float]] = field(default_factory=list)
    distribution: Optional[Distribution] = None
    settings: dict = field(default_factory=dict)

    def side(self, name: str) -> LungMeasures:
        """``right``, ``left`` or ``total``."""
        if name not in SIDES:
            raise KeyError(name)
        return getattr(self, name)


@dataclass
class Corads(_Record):
    """A CO-RADS-style suggestion (:mod:`covidct.quantify.corads`), never a diagnosis."""

    category: int
    label: str
    reasons: list[str] = field(default_factory=list)
    note: str = ""
    text: str = ""


@dataclass
class Geometry(_Record):
    shape_kji: list[int]
    spacing_mm: list[float]


@dataclass(frozen=True)
class Study(_Record, StudyFacts):
    """The study facts as written: identifying fields only when the user asked for them."""

    identifiers_included: bool = field(default=False, metadata=_NOT_IN_JSON)

    @classmethod
    def from_facts(cls, facts: StudyFacts, include_identifiers: bool = False) -> "Study":
        values = {f.name: getattr(facts, f.name) for f in dataclasses.fields(StudyFacts)}
        study = cls(**values, identifiers_included=include_identifiers)
        return study if include_identifiers else study.without_identifiers()

    def without_identifiers(self) -> "Study":
        return dataclasses.replace(self, identifiers_included=False,
                                   **{name: "" for name in self.IDENTIFYING_FIELDS})

    def with_identifiers(self, **values) -> "Study":
        """Identifying fields kept, empty ones filled from ``values`` (e.g. the DICOM source)."""
        filled = {name: getattr(self, name) or values.get(name, "") for name in self.IDENTIFYING_FIELDS}
        return dataclasses.replace(self, identifiers_included=True, **filled)

    @classmethod
    def _from_json_hook(cls, kwargs: dict, data: dict) -> None:
        kwargs["identifiers_included"] = any(name in data for name in cls.IDENTIFYING_FIELDS)

    def _to_json_hook(self, out: dict) -> dict:
        if not self.identifiers_included:
            for name in self.IDENTIFYING_FIELDS:
                out.pop(name, None)
        return out


# Key order of the written file (the order ``analyze`` always used).
_KEY_ORDER = ("schema_version", "software", "probabilities", "decision", "classifier_decision", "decision_basis",
              "threshold", "operating_point", "pooling", "classified_on", "per_slice", "key_slices", "corads",
              "input", "enhanced", "heatmap", "lung_mask", "lesions", "lesion_labels", "lung_mask_labels",
              "quality", "quantification", "model", "study", "geometry", "warnings", "timings_s")
VOLUME_FIELDS = ("input", "enhanced", "heatmap", "lung_mask", "lesions")


@dataclass
class AnalysisResult(_Record):
    """One scan's analysis, as in ``result.json``; volume fields are file names in its folder."""

    probabilities: Probabilities
    decision: str                        # the product's decision (classifier anchored on lesion evidence)
    threshold: float
    per_slice: list[SliceScore]
    heatmap: str
    schema_version: int = SCHEMA_VERSION  # of the data as read; version-1 files load as 1
    software: Software = field(default_factory=Software)
    classifier_decision: Optional[str] = None
    decision_basis: Optional[ScanDecision] = None
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)
    pooling: Optional[str] = None
    classified_on: Optional[str] = None
    key_slices: list[int] = field(default_factory=list)
    corads: Optional[Corads] = None
    input: Optional[str] = None
    enhanced: Optional[str] = None
    lung_mask: Optional[str] = None
    lesions: Optional[str] = None
    lesion_labels: dict[str, str] = field(default_factory=dict)
    lung_mask_labels: Optional[dict[str, str]] = _optional()
    quality: Optional[Quality] = None
    quantification: Optional[Quantification] = None
    model: Models = field(default_factory=Models)
    study: Study = field(default_factory=Study)
    geometry: Optional[Geometry] = None
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    extra: dict = _extra()

    # -- reading and writing

    @classmethod
    def from_dict(cls, data, source: str = RESULT_NAME) -> "AnalysisResult":
        if isinstance(data, dict):
            version = data.get("schema_version", 1)
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ResultFileError(f"{source}: schema_version {version!r} is not a version number. "
                                      "Re-run the analysis.")
            if version > SCHEMA_VERSION:
                raise ResultFileError(f"{source} was written by a newer CovidCT (result schema {version}; this "
                                      f"version reads up to {SCHEMA_VERSION}). Update CovidCT.")
            data = dict(data, schema_version=version)
        return super().from_dict(data, source)

    @classmethod
    def from_json(cls, text: str, source: str = RESULT_NAME) -> "AnalysisResult":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultFileError(f"{source} is not valid JSON ({exc}); re-run the analysis.") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path) -> "AnalysisResult":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultFileError(f"{path} cannot be read ({exc}).") from None
        return cls.from_json(text, str(path))

    def to_dict(self) -> dict:
        out = super().to_dict()
        return {**{k: out.pop(k) for k in _KEY_ORDER if k in out}, **out}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _check(self, where: str) -> None:
        p = self.probabilities.covid19
        if not 0.0 <= p <= 1.0:
            raise _Invalid(f"COVID-19 probability {p} is not within 0..1")

    # -- what readers ask of it

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between slices: the geometry's, else from the per-slice positions."""
        if self.geometry and len(self.geometry.spacing_mm) == 3:
            return float(self.geometry.spacing_mm[2])
        z = sorted(s.z_mm for s in self.per_slice)
        steps = [b - a for a, b in zip(z, z[1:]) if b > a]
        return min(steps) if steps else 0.0

    def chosen_key_slices(self, count: int = KEY_SLICE_COUNT) -> list:
        """The key slices the analysis chose; for results without them, chosen the same way now."""
        if self.key_slices:
            return list(self.key_slices)
        return pick_key_slices(self.per_slice, count, self.slice_spacing_mm)

    def scores_by_index(self) -> dict:
        return {s.index: s.covid19 for s in self.per_slice if s.covid19 is not None}

    def with_corads(self) -> "AnalysisResult":
        """This result with its CO-RADS-style suggestion (made now only when it lacks one)."""
        return self if self.corads is not None else dataclasses.replace(self, corads=suggest_corads_for(self))


# --------------------------------------------------------------------------- domain decisions

def pick_key_slices(per_slice: Sequence[SliceScore], count: int, spacing_mm: float) -> list:
    """Indices of the most suspicious slices, at least ``KEY_SLICE_MIN_GAP_MM`` apart."""
    scored = sorted((s for s in per_slice if s.covid19 is not None), key=lambda s: s.covid19, reverse=True)
    chosen: list = []
    for item in scored:
        if all(abs(item.z_mm - other.z_mm) >= max(KEY_SLICE_MIN_GAP_MM, spacing_mm) for other in chosen):
            chosen.append(item)
        if len(chosen) == count:
            break
    return [item.index for item in chosen]


def suggest_corads_for(result: AnalysisResult) -> Corads:
    """The CO-RADS-style suggestion from the result's probability, quantification and quality."""
    from .quantify.corads import suggest_corads

    suggestion = suggest_corads(result.probabilities.covid19, float(result.threshold),
                                result.quantification.to_dict() if result.quantification else None,
                                result.quality.to_dict() if result.quality else None)
    return Corads.from_dict(suggestion.to_dict())


def lesion_label_names() -> dict:
    """``{label value (text): name}`` of the lesion label map ``analyze`` writes."""
    from .quantify.lesions import LESION_LABELS

    return {str(v): k.replace("_", " ") for k, v in LESION_LABELS.items()}


def slice_scores(z_positions_mm: Sequence[float], scores: Sequence[Optional[float]]) -> list:
    """Per-slice entries for the given positions and scores (None: no lung on that slice)."""
    return [SliceScore(index=k, z_mm=float(z), covid19=s, in_lung=s is not None)
            for k, (z, s) in enumerate(zip(z_positions_mm, scores))]


# --------------------------------------------------------------------------- test data

_UNSET = object()


def example_result(per_slice: Optional[list] = None, *, corads=_UNSET, **overrides) -> AnalysisResult:
    """A complete, valid result for tests and the Slicer self-test; ``overrides`` replace fields.

    Defaults: 8 slices 2 mm apart scoring 0.1 but slice 5 (0.9), probability 0.83 at threshold
    0.5, no quantification; the decision, its basis, the key slices and (unless ``corads`` is
    given, None for a version-1-like result) the CO-RADS-style suggestion are then derived
    from those values as ``analyze`` derives them.
    """
    if per_slice is None:
        per_slice = slice_scores([2.0 * k for k in range(8)], [0.9 if k == 5 else 0.1 for k in range(8)])
    values = dict(
        software=Software(__version__), probabilities=Probabilities(0.83, 0.17), threshold=0.5,
        operating_point=OperatingPoint(sensitivity=0.8, specificity=0.7), pooling="mean",
        classified_on="original", per_slice=list(per_slice), input="input.nrrd", enhanced=None,
        heatmap="heatmap.nrrd", lung_mask="lung_mask.nrrd", lesions="lesions.nrrd",
        lesion_labels={"1": "ground glass", "2": "consolidation"},
        quality=Quality(needs_enhancement=False, suggested_scale=1, enhancement_applied=False,
                        enhancement=Enhancement(False, "quality gate: not needed")),
        model=Models(classifier=ModelInfo(name="example", version="test", sha256="0" * 64)),
        study=Study(modality="CT", source_format="NRRD"), timings_s={})
    values.update(overrides)
    if "decision_basis" not in values:
        q = values.get("quantification")
        values["decision_basis"] = decide(values["probabilities"].covid19, values["threshold"],
                                          q.to_dict() if q else None)
    basis = values["decision_basis"]
    values.setdefault("decision", basis.decision if basis else "COVID-19")
    values.setdefault("classifier_decision", basis.classifier_decision if basis else values["decision"])
    result = AnalysisResult(**values)
    if "key_slices" not in overrides:
        result.key_slices = pick_key_slices(result.per_slice, KEY_SLICE_COUNT, result.slice_spacing_mm)
    result.corads = suggest_corads_for(result) if corads is _UNSET else corads
    return result
