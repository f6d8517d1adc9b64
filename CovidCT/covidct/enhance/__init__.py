"""The Enhancer: GAN super-resolution of low-quality CT (SRResNet / SRGAN, trained on HU CT).

Public entry points:

* :func:`enhance_volume` - HU in, HU out, in-plane matrix x scale, geometry exact;
* :func:`assess_quality` - the quality gate: does a scan need enhancement, and why.

Training (``covidct train-enhancer``) and evaluation (``covidct evaluate-enhancer``) live
in :mod:`covidct.research.enhancer` (not part of the Slicer extension); the model card is ``weights/ENHANCER_CARD.md``.
"""

from .inference import DEFAULT_MODEL, MODEL_CHOICES, MODEL_KEYS, choose_scale, enhance_volume
from .quality_gate import QualityAssessment, assess_quality

__all__ = ["enhance_volume", "choose_scale", "assess_quality", "QualityAssessment",
           "DEFAULT_MODEL", "MODEL_CHOICES", "MODEL_KEYS"]
