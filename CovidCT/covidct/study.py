"""What the report may say about the acquisition: :class:`StudyFacts`.

Its own module (standard library only) because two places need it: the volume the
loaders fill, and ``result.json`` (:mod:`covidct.result`), which is also read by the
Slicer module without the imaging stack.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class StudyFacts:
    """Non-identifying facts about the acquisition that the report shows.

    Patient name, ID and birth date are only filled when the user explicitly asked
    for identifying data (``include_identifiers=True`` in the loaders).
    """

    modality: str = ""
    study_date: str = ""
    series_description: str = ""
    manufacturer: str = ""
    scanner_model: str = ""
    slice_thickness_mm: Optional[float] = None
    kvp: Optional[float] = None
    convolution_kernel: str = ""
    patient_age: str = ""
    patient_sex: str = ""
    body_part: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    source_format: str = ""
    # Identifying fields: empty unless explicitly requested.
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""

    IDENTIFYING_FIELDS = ("patient_name", "patient_id", "patient_birth_date")

    def to_dict(self, include_identifiers: bool = False) -> dict:
        """Plain dict for JSON; identifying fields dropped unless asked for."""
        out = dataclasses.asdict(self)
        if not include_identifiers:
            for name in self.IDENTIFYING_FIELDS:
                out.pop(name, None)
        return out
