import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covidct.classify import metrics, pooling
from covidct.classify.input_normalisation import content_box, normalise_slice, standardise_histogram


def test_top_k_mean_finds_few_diseased_slices():
    scores = [0.05] * 37 + [0.9, 0.95, 0.85]
    assert pooling.top_k_mean(scores) == pytest.approx(0.9, abs=1e-9)  # k = 4 -> (0.9+0.95+0.85+0.05)/4? no
