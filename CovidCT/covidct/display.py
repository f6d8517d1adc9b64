"""How the heatmap is shown over the CT: one set of defaults for the Slicer module and the report.

The report redraws a Slicer slice view with the module's default settings (see
:mod:`covidct.report.figures`), so the module's parameter node, its display functions
and the report all read them here: the shipped perceptual colour table, a fixed 0..1
window (colours comparable between patients), scores under the lower threshold fully
transparent (weak evidence must not hide the CT) and the foreground opacity.
"""

from pathlib import Path

from .preprocess.windowing import LUNG_WINDOW_HU

# The lung window as a Slicer display node takes it (width, level): the model's own window.
LUNG_WINDOW_WIDTH_HU = LUNG_WINDOW_HU[1] - LUNG_WINDOW_HU[0]
LUNG_WINDOW_LEVEL_HU = (LUNG_WINDOW_HU[0] + LUNG_WINDOW_HU[1]) / 2.0
HEAT_COLORMAP = "CovidCT-Inferno"
HEAT_OPACITY = 0.4
HEAT_LOWER_THRESHOLD = 0.3
HEAT_RANGE = (0.0, 1.0)
COLOUR_TABLE_DIR = Path(__file__).resolve().parents[1] / "Resources" / "ColorTables"


def colour_table_file(name: str = HEAT_COLORMAP) -> Path:
    """The shipped Slicer colour-table file of ``name`` (``index name R G B A`` per line).

    The module's ``Resources/ColorTables`` in a clone or the Slicer extension, else the copy
    a wheel carries as package data; a missing table is an error, never another colour map.
    """
    source = COLOUR_TABLE_DIR / f"{name}.txt"
    if source.exists():
        return source
    from .weights import package_data_dir

    packaged = package_data_dir("ColorTables") / f"{name}.txt"
    if packaged.exists():
        return packaged
    raise FileNotFoundError(f"Colour table '{name}' is missing from {COLOUR_TABLE_DIR} and from the package data: "
                            "reinstall CovidCT.")
