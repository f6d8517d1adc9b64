"""COVID-19 vs non-COVID classification of chest CT: network, inference, pooling, CAM, metrics (training: covidct.research.classifier).

Public API (used by ``covidct.analyze`` and the CLI)::

    classify_volume(volume, lung_mask, device="auto", progress=None, cancel=None,
                    cam_slices="all") -> ScanClassification
    classify_images(paths) -> list[dict]
"""

from .api import Classifier, ScanClassification, classify_images, classify_volume, load_classifier

__all__ = ["Classifier", "ScanClassification", "classify_images", "classify_volume", "load_classifier"]
