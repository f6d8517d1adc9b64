"""Regenerate the bundled low-resolution sample scan from COVID-CT-MD P001.

The sample is P001 reduced x4 in-plane by block averaging (512² -> 128², as OpenCV's
INTER_AREA does) - the kind of low-quality input the enhancer exists for - stored as
an int16 NRRD in HU without any DICOM header (so no identifiers travel with it).

    python tools/make_sample_scan.py [--data ../shared/data]
"""

import argparse
from pathlib import Path

import numpy as np

from covidct.io import load_ct, save_volume
from covidct.preprocess.resample import area_downsample, scaled_in_plane_geometry
from covidct.volume import CTVolume, StudyFacts

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "CovidCT" / "Resources" / "SampleData" / "covidct-sample-P001-128.nrrd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("-o", "--output", default=str(SAMPLE))
    args = parser.parse_args()
    scan = load_ct(Path(args.data) / "covid-ct-md" / "P001")
    low = np.round(area_downsample(scan.voxels, 4)).astype(np.int16)
    spacing, origin = scaled_in_plane_geometry(scan, 0.25)
    sample = CTVolume(low, spacing, origin, scan.direction_lps,
                      StudyFacts(modality="CT", source_format="NRRD"))
    save_volume(sample, args.output)
    print(f"wrote {args.output}: {sample.shape} voxels, spacing {sample.spacing_mm} mm")


if __name__ == "__main__":
    main()
