"""The A4 PDF report: what left the software, in a form a reader can check and sign.

Built with reportlab's layout engine (not a screenshot) so text stays searchable and
copyable; a TrueType font (DejaVu, shipped with matplotlib) is embedded so the PDF looks
the same everywhere and can print units and dashes.  Patient name and ID appear only
when the caller explicitly asks (``include_identifiers=True``).
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import RESEARCH_USE_DISCLAIMER
from ..display import HEAT_COLORMAP, HEAT_LOWER_THRESHOLD, HEAT_OPACITY, HEAT_RANGE
from ..preprocess.windowing import LUNG_WINDOW_HU
from ..quantify.hu_bands import CONSOLIDATION_RANGE_HU, DEFAULT_BANDS, GGO_RANGE_HU, HUBand
from ..quantify.lung_volumes import SIDES
from ..quantify.severity import MAX_ZONE_SCORE, NONE_BELOW_PERCENT, SCORE_UPPER_BOUNDS_PERCENT
from ..quantify.zones import ZONES
from ..result import AnalysisResult, Quality
from ..study import StudyFacts

FONT = "CovidCT-DejaVuSans"
FONT_BOLD = "CovidCT-DejaVuSans-Bold"
PAGE_MARGIN_MM = 16
# The zone-based score's maximum when a result does not say (5 per zone, 3 zones per lung).
DEFAULT_SEVERITY_MAX = MAX_ZONE_SCORE * len(ZONES) * len(SIDES)


def register_fonts() -> None:
    """Embed DejaVu Sans (regular and bold) from matplotlib's bundled fonts."""
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(font_dir / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(font_dir / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


def _numbered_canvas_class(footer_text: str):
    """A canvas that writes "page N of M" once the total number of pages is known."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    class NumberedCanvas(canvas.Canvas):
        def __init__(self, *args, **kwargs):
            if not kwargs.get("initialFontName"):
                kwargs["initialFontName"] = FONT  # else Helvetica, a font that is not embedded
            super().__init__(*args, **kwargs)
            self._saved_pages = []

        def showPage(self):  # noqa: N802 - reportlab's name
            self._saved_pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._saved_pages)
            for state in self._saved_pages:
                self.__dict__.update(state)
                width, _ = self._pagesize
                self.setFont(FONT, 7.5)
                self.setFillGray(0.35)
                self.drawString(PAGE_MARGIN_MM * mm, 9 * mm, footer_text)
                self.drawRightString(width - PAGE_MARGIN_MM * mm, 9 * mm,
                                     f"Page {self._pageNumber} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def _styles():
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("base", fontName=FONT, fontSize=9, leading=11.5)
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#333333")),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=16, leading=20),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=9, textColor=colors.HexColor("#8b0000")),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=11, leading=14, spaceBefore=8,
                             spaceAfter=3),
        "result": ParagraphStyle("result", parent=base, fontSize=10, leading=13),
        "disclaimer": ParagraphStyle("disclaimer", parent=base, fontName=FONT_BOLD, fontSize=9,
                                     textColor=colors.HexColor("#8b0000")),
    }


def _esc(value) -> str:
    from xml.sax.saxutils import escape

    return escape("" if value is None else str(value))


def _hu_span(range_hu, signed_high: bool = False) -> str:
    """``(-750, -300)`` -> ``"-750 to -300"``; ``signed_high`` writes a positive end as ``+50``."""
    low, high = range_hu
    return f"{low:g} to {high:+g}" if signed_high else f"{low:g} to {high:g}"


def _bands(settings: dict) -> tuple:
    """The HU bands a result was measured with (the defaults when it does not say)."""
    return tuple(HUBand.from_dict(band) for band in settings.get("bands") or []) or DEFAULT_BANDS


def _bands_sentence(settings: dict) -> str:
    """The bands, the emphysema index and the ground-glass/consolidation split, from the settings."""
    bands = _bands(settings)
    split_hu = (settings.get("ground_glass_range_hu") or GGO_RANGE_HU)[1]
    if bands == DEFAULT_BANDS:
        closed = ", ".join(f"{b.name} {_hu_span((b.low_hu, b.high_hu))}" for b in bands
                           if math.isfinite(b.low_hu) and math.isfinite(b.high_hu))
        text = (f"Bands: SlicerLungCTAnalyzer defaults ({closed} HU), {bands[0].high_hu:g} HU emphysema index")
    else:
        text = "Bands: " + ", ".join(f"{b.name} {b.range_text()}" for b in bands)
    return (text + f", {split_hu:g} HU ground-glass/consolidation split; band shares are of all lung voxels, "
            "vessels included. ")


def _involvement_method(settings: dict, unfiltered_percent) -> str:
    """One paragraph saying how 'involved lung' was measured, from the settings that made it."""
    bands = _bands_sentence(settings)
    les = settings.get("lesions")
    if not les or str(settings.get("involvement", "")).startswith("voxels"):
        involved = " and ".join(b.name for b in _bands(settings) if b.involved)
        return bands + f"Involved lung = voxels in the {involved} bands (no vessel handling)."
    opening = ", ".join(_fmt(n * g, 1) for n, g in zip(les.get("opening_size_voxels_kji") or [],
                                                      les.get("working_spacing_kji_mm") or []))
    return bands + (
        "Involved lung = a lesion mask from HU alone (no trained model): the lung's background density, a "
        f"grey-level opening over {opening or '-'} mm (z, y, x) that removes vessels, airway walls, fissures "
        f"and the sub-pleural partial-volume shell, between {_fmt(les.get('lowest_hu'), 0)} and "
        f"{_fmt(les.get('max_lesion_hu'), 0)} HU, in regions reaching at least {_fmt(les.get('min_depth_mm'), 0)} mm "
        f"into the lung; mostly solid regions under {_fmt(les.get('max_solid_ml'), 0)} ml (hilar vessels) are "
        f"dropped; lesions grown by up to {_fmt(les.get('grow_mm'), 0)} mm. Ground glass / consolidation split "
        f"at {_fmt(les.get('consolidation_from_hu'), 0)} HU. Raw bands without the lesion mask: "
        f"{_fmt(unfiltered_percent, 1)} %. Missed: small nodules and thin bands narrower than the opening; "
        "dependent density in supine scans reads as ground glass.")


def _zone_score_note(severity: dict, severity_max) -> str:
    """How a zone is scored, from the score bins the result was made with."""
    none_below = severity.get("none_below_percent", NONE_BELOW_PERCENT)
    bounds = list(severity.get("score_upper_bounds_percent") or SCORE_UPPER_BOUNDS_PERCENT)
    bins = [f"0 (none, under {none_below:g} % measured)", f"1 (&lt;{bounds[0]:g} %)"]
    bins += [f"{score} ({low:g}-{high:g} %)" for score, (low, high) in enumerate(zip(bounds, bounds[1:]), start=2)]
    bins.append(f"{len(bounds) + 1} (&gt;{bounds[-1]:g} %)")
    return ("Zone-based: each lung is split into cranio-caudal thirds (lobes are not segmented); each zone "
            f"scores {', '.join(bins)}. The 0-{severity_max} total is not the lobar 0-25 CT severity score.")


def _or(value, default):
    return default if value is None else value


def _fmt(value, digits=1, unit="") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}{unit}"
    return str(value)


def _table(rows, col_widths, header=True, zebra=True):
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=col_widths, hAlign="LEFT")
    style = [("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#aaaaaa")),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONTNAME", (0, 0), (-1, 0), FONT_BOLD), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5"))]
    if zebra:
        for r in range(2 if header else 1, len(rows), 2):
            style.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#f7f7f7")))
    table.setStyle(TableStyle(style))
    return table


def study_rows(study: StudyFacts, include_identifiers: bool) -> list:
    """(label, value) rows of the header; identifiers only when asked for."""
    scanner = " ".join(x for x in (study.manufacturer, study.scanner_model) if x)
    rows = [("Study date", study.study_date or "-"),
            ("Series", study.series_description or "-"),
            ("Scanner", scanner or "-"),
            ("Slice thickness", _fmt(study.slice_thickness_mm, 2, " mm")),
            ("Tube voltage", _fmt(study.kvp, 0, " kV")),
            ("Kernel", study.convolution_kernel or "-"),
            ("Age / sex", f"{study.patient_age or '-'} / {study.patient_sex or '-'}"),
            ("Source format", study.source_format or "-")]
    if include_identifiers:
        rows = [("Patient name", study.patient_name or "-"),
                ("Patient ID", study.patient_id or "-"),
                ("Birth date", study.patient_birth_date or "-")] + rows
    return rows


def _decision_basis_lines(result: AnalysisResult) -> list:
    """Which evidence decided, and the classifier's own call when the lesion evidence overruled it."""
    basis = result.decision_basis
    if not basis:
        return []
    line = f"<b>Decided by:</b> {_esc(basis.basis or '-')}: {_esc('; '.join(basis.reasons or []))}"
    if basis.classifier_decision and basis.classifier_decision != result.decision:
        line += f" (classifier alone: {_esc(basis.classifier_decision)})"
    return [line]


def _header(result: AnalysisResult, include_identifiers: bool, width: float) -> list:
    """Study facts in two label/value column pairs, ruled off below."""
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    rows = study_rows(result.study, include_identifiers)
    half = (len(rows) + 1) // 2
    grid = []
    for r in range(half):
        left = rows[r]
        right = rows[r + half] if r + half < len(rows) else ("", "")
        grid.append([left[0], _esc(left[1]), right[0], _esc(right[1])])
    header = Table(grid, colWidths=[0.16 * width, 0.34 * width, 0.16 * width, 0.34 * width], hAlign="LEFT")
    header.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                                ("FONTNAME", (0, 0), (0, -1), FONT_BOLD), ("FONTNAME", (2, 0), (2, -1), FONT_BOLD),
                                ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey)]))
    return [header]


def _result_box(result: AnalysisResult, st: dict, width: float) -> list:
    """Probability, decision and why, quality gate and CO-RADS-style suggestion, boxed."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    p = result.probabilities.covid19
    op = result.operating_point
    quality = result.quality or Quality()
    applied = quality.enhancement_applied
    reasons = "; ".join(quality.reasons) or "no quality problem found"
    corads = result.corads
    lines = [
        f"<b>COVID-19 probability:</b> {_fmt(100 * p, 1, ' %')}",
        f"<b>Decision at threshold {_fmt(result.threshold, 2)}:</b> {_esc(result.decision)} "
        f"(model card operating point: sensitivity {_fmt(op.sensitivity, 2)}, "
        f"specificity {_fmt(op.specificity, 2)})",
        *_decision_basis_lines(result),
        f"<b>Quality gate:</b> enhancement {'needed' if quality.needs_enhancement else 'not needed'}; "
        f"{'applied' if applied else 'not applied'}. Reasons: {_esc(reasons)}",
        f"<b>{_esc(corads.text if corads else 'CO-RADS-style suggestion: -')}</b>",
    ]
    box = Table([[Paragraph("<br/>".join(lines), st["result"])]], colWidths=[width])
    box.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT),
                             ("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor("#2c3e50")),
                             ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f4f8fb")),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 5),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    return [box]


def _band_row_label(name: str, band_info: dict) -> str:
    if not band_info:
        return f"{name.capitalize()} (%)"
    return f"{name.capitalize()} {HUBand.from_dict(band_info).range_text()} (%)"


def _quantification_section(result: AnalysisResult, st: dict, width: float) -> list:
    """Volumes, involvement and band shares per lung, how involvement was measured, zone scores."""
    from reportlab.platypus import Paragraph

    q = result.quantification
    story = [Paragraph("Lung quantification (HU density bands)", st["h2"])]
    if not q:
        return story + [Paragraph("No quantification available.", st["base"])]
    settings = q.settings
    sides = SIDES + ("total",)
    get = lambda side, key: getattr(q.side(side), key)  # noqa: E731
    ggo_hu = _hu_span(settings.get("ground_glass_range_hu") or GGO_RANGE_HU, signed_high=True)
    consolidation_hu = _hu_span(settings.get("consolidation_range_hu") or CONSOLIDATION_RANGE_HU, signed_high=True)
    rows = [["", "Right lung", "Left lung", "Both lungs"],
            ["Lung volume (ml)"] + [_fmt(get(s, "volume_ml"), 0) for s in sides],
            ["Involved lung (%)"] + [_fmt(get(s, "involvement_percent"), 1) for s in sides],
            ["Involved lung (ml)"] + [_fmt(get(s, "involved_ml"), 0) for s in sides],
            ["  of which ground glass (%)"] + [_fmt(get(s, "lesion_ground_glass_percent"), 1) for s in sides],
            ["  of which consolidation (%)"] + [_fmt(get(s, "lesion_consolidation_percent"), 1) for s in sides],
            [f"All voxels {ggo_hu} HU (%)"] + [_fmt(get(s, "ground_glass_percent"), 1) for s in sides],
            [f"All voxels {consolidation_hu} HU (%)"] + [_fmt(get(s, "consolidation_percent"), 1) for s in sides]]
    band_info = {b["name"]: b for b in settings.get("bands", [])}
    for band in q.total.bands_percent or {}:
        rows.append([_band_row_label(band, band_info.get(band, {}))] +
                    [_fmt((get(s, "bands_percent") or {}).get(band), 1) for s in sides])
    story.append(_table(rows, [0.4 * width, 0.2 * width, 0.2 * width, 0.2 * width]))
    story.append(Paragraph(_involvement_method(settings, get("total", "involvement_without_vessel_filter_percent")),
                           st["small"]))

    story.append(Paragraph("Zone-based CT severity score", st["h2"]))
    rows = [["Zone", "Right: involved % / score", "Left: involved % / score"]]
    for zone in ZONES:
        cells = [zone.capitalize()]
        for side in SIDES:
            z = (q.side(side).zones or {}).get(zone)
            cells.append(f"{_fmt(z.involvement_percent if z else None, 1)} % / {z.score if z else '-'}")
        rows.append(cells)
    severity_max = _or(q.total.severity_max, DEFAULT_SEVERITY_MAX)
    rows.append(["Total", f"{_or(q.total.severity_score, '-')} of {severity_max}", ""])
    story.append(_table(rows, [0.2 * width, 0.4 * width, 0.4 * width]))
    story.append(Paragraph(_zone_score_note(settings.get("severity") or {}, severity_max), st["small"]))
    return story


def _corads_section(result: AnalysisResult, st: dict) -> list:
    from reportlab.platypus import Paragraph

    corads = result.corads
    items = "".join(f"<br/>&bull; {_esc(r)}" for r in (corads.reasons if corads else []))
    return [Paragraph("CO-RADS-style suggestion (not a diagnosis)", st["h2"]),
            Paragraph(f"<b>{_esc(corads.text if corads else '-')}</b>{items}", st["base"]),
            Paragraph(_esc(corads.note if corads else ""), st["small"])]


def _figures_section(figures: dict, st: dict, width: float) -> list:
    """A new page: the key-slice panels (with how they are drawn) and the per-slice chart."""
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, PageBreak, Paragraph

    story = [PageBreak(), Paragraph("Key slices (highest-scoring): original | enhanced | heatmap overlay", st["h2"])]
    key_png = figures.get("key_slices")
    if key_png and Path(key_png).exists():
        story.append(_scaled_image(Image, key_png, width, 175 * mm))
        story.append(Paragraph(
            f"Lung window {_hu_span(LUNG_WINDOW_HU)} HU; heatmap: colour table {HEAT_COLORMAP}, window "
            f"{HEAT_RANGE[0]:g} to {HEAT_RANGE[1]:g}, opacity {100 * HEAT_OPACITY:.0f} %, values under "
            f"{HEAT_LOWER_THRESHOLD:g} transparent (the Slicer module's defaults). Letters give the patient's "
            "orientation; the bar gives the scale.",
            st["small"]))
    chart_png = figures.get("slice_chart")
    if chart_png and Path(chart_png).exists():
        story.append(Paragraph("Per-slice score along z", st["h2"]))
        story.append(_scaled_image(Image, chart_png, width, 70 * mm))
    return story


def _models_section(result: AnalysisResult, st: dict, width: float) -> list:
    """Which classifier and enhancer (name, version, sha256) and which software made the numbers."""
    from reportlab.platypus import KeepTogether, Paragraph

    rows = [["Component", "Name", "Version", "sha256"]]
    for key in ("classifier", "enhancer"):
        m = getattr(result.model, key)
        if m:
            rows.append([key, _esc(m.display_name or "-"), _esc(_or(m.version, "-")),
                         Paragraph(_esc(_or(m.sha256, "-")), st["small"])])
        else:
            rows.append([key, "not used", "-", "-"])
    rows.append(["software", "covidct", _esc(_software(result)), "-"])
    return [KeepTogether([Paragraph("Models and software", st["h2"]),
                          _table(rows, [0.15 * width, 0.25 * width, 0.12 * width, 0.48 * width])])]


def _reader_section(st: dict, width: float) -> list:
    """The disclaimer again and lines for the reader's assessment, name, date and signature."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    reader = [Paragraph("Reader's assessment", st["h2"]), Paragraph(_esc(RESEARCH_USE_DISCLAIMER), st["disclaimer"]),
              Spacer(1, 3 * mm)]
    line_rows = [[""] for _ in range(4)] + [["Reader name: " + "_" * 40 + "   Date: " + "_" * 18],
                                            ["Signature: " + "_" * 58]]
    lines_table = Table(line_rows, colWidths=[width], rowHeights=[8 * mm] * len(line_rows))
    lines_table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 3), 0.5, colors.grey),
                                     ("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 9),
                                     ("VALIGN", (0, 0), (-1, -1), "BOTTOM")]))
    reader.append(lines_table)
    return [KeepTogether(reader)]


def _software(result: AnalysisResult) -> str:
    return result.software.covidct or "unknown"


def _write(story: list, output_pdf: Path, software: str) -> Path:
    """Lay the story out on numbered A4 pages into ``output_pdf`` (atomically replaced)."""
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    from ..io import atomic_path

    # Binary (Flate only) streams: reportlab's pure-Python ASCII85 step costs about 1 s on the
    # key-slice images and makes the file a quarter larger; every PDF reader takes binary.
    rl_config.useA85 = 0
    footer = f"CovidCT {software} - research use only, not for clinical diagnosis"
    with atomic_path(output_pdf) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=PAGE_MARGIN_MM * mm,
                                rightMargin=PAGE_MARGIN_MM * mm, topMargin=14 * mm, bottomMargin=16 * mm,
                                title="CovidCT chest CT analysis", author=f"CovidCT {software}",
                                subject="Research-use chest CT analysis report", creator="CovidCT")
        doc.build(story, canvasmaker=_numbered_canvas_class(footer))
    return output_pdf


def build_pdf(result: AnalysisResult, output_pdf, figures: dict, include_identifiers: bool = False) -> Path:
    """Write the report PDF for one result; ``figures`` maps ``key_slices`` and ``slice_chart``
    to PNG paths.  Returns the written path (atomically replaced)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer

    register_fonts()
    st = _styles()
    width = A4[0] - 2 * PAGE_MARGIN_MM * mm
    story = [Paragraph("CovidCT chest CT analysis", st["title"]),
             Paragraph(_esc(RESEARCH_USE_DISCLAIMER), st["subtitle"]), Spacer(1, 4 * mm)]
    story += _header(result, include_identifiers, width) + [Spacer(1, 4 * mm)]
    story += _result_box(result, st, width)
    story += _quantification_section(result, st, width)
    story += _corads_section(result, st)
    story += _figures_section(figures, st, width)
    story += _models_section(result, st, width)
    story += _reader_section(st, width)
    return _write(story, Path(output_pdf), _software(result))


def _scaled_image(image_cls, path, max_width, max_height):
    """The PNG at its aspect ratio, as large as fits in ``max_width`` x ``max_height``."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        w, h = im.size
    scale = min(max_width / w, max_height / h)
    return image_cls(str(path), width=w * scale, height=h * scale)
