"""The session page: what the Slicer module's panel shows, laid out for a browser.

Left: open (data-folder browser, bundled sample, upload), Analyze/Cancel with the stage,
display controls.  Right: the linked original | enhanced views, the per-slice score
chart (click a bar to go there), the results and the downloads.  Element ids are stable:
the browser tests and users' scripts find controls by them.
"""

from __future__ import annotations

from trame.ui.vuetify3 import VAppLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

from CovidCTLib.volume_nodes import WINDOW_PRESETS_HU

STYLE = """
.covidct-views { height: 56vh; min-height: 320px; background: #000; position: relative; }
.covidct-view-labels { position: absolute; top: 4px; left: 0; right: 0; display: flex; z-index: 2;
  pointer-events: none; color: #fff; font-size: 13px; }
.covidct-view-labels span { flex: 1; padding-left: 8px; text-shadow: 0 0 3px #000; }
.covidct-chart { display: flex; align-items: flex-end; height: 110px; gap: 1px;
  border-bottom: 1px solid #888; cursor: pointer; }
.covidct-bar { flex: 1; min-width: 2px; background: #7a8ca3; }
.covidct-bar.hot { background: #ee5a1f; }
.covidct-bar.current { outline: 2px solid #4fc3f7; }
.covidct-legend { height: 12px; border-radius: 2px;
  background: linear-gradient(to right, #000004, #420a68, #932667, #dd513a, #fca50a, #fcffa4); }
"""


def _open_panel(app) -> None:
    from trame_slicer.app.ui import LoadVolumeUI

    html.Div("Open a scan", classes="text-subtitle-2 mb-1")
    v3.VBtn("Open the bundled sample", id="open-sample", block=True, color="primary", variant="tonal",
            click=app.open_sample, disabled=("busy || opening",), classes="mb-2")
    html.Div("Data folder: /{{ browse_path }}", classes="text-caption")
    with v3.VList(density="compact", id="data-browser", max_height="220px", classes="overflow-y-auto"):
        v3.VListItem(title="..", v_if="browse_parent !== null", prepend_icon="mdi-arrow-up",
                     click=(app.browse, "[browse_parent]"))
        with v3.VListItem(v_for="entry in browse_entries", key="entry.path", title=("entry.name",),
                          prepend_icon=("entry.folder ? 'mdi-folder' : 'mdi-file'",),
                          click=(app.browse_or_open, "[entry]"), raw_attrs=[':data-path="entry.path"']):
            with v3.Template(v_slot_append=True):
                v3.VBtn("Open", v_if="entry.folder", size="x-small", variant="text",
                        click_stop=(app.open_relative, "[entry.path]"), classes="open-folder")
    with html.Div(classes="d-flex align-center"):
        html.Span("or upload:", classes="text-caption mr-2")
        LoadVolumeUI().on_load_volume.connect(app.open_uploaded)
    with html.Div(classes="d-flex align-center ga-2"):
        v3.VTextField(v_model=("typed_path", ""), label="Path in the data folder", density="compact",
                      hide_details=True, id="path-input")
        v3.VBtn("Open", id="open-path", size="small", click=(app.open_relative, "[typed_path]"),
                disabled=("busy || opening",))


def _analysis_panel(app) -> None:
    with html.Div(classes="d-flex ga-2 mt-2"):
        v3.VSelect(label="Enhancement", v_model=("enhancement",), items=("['auto', 'on', 'off']",),
                   density="compact", hide_details=True)
        v3.VSelect(label="Scale", v_model=("scale",), items=("['auto', '1', '2', '4']",),
                   density="compact", hide_details=True)
    with html.Div(classes="d-flex ga-2 mt-2"):
        v3.VBtn("Analyze", id="analyze", color="primary", click=app.analyze,
                disabled=("!scan_loaded || busy || opening",))
        v3.VBtn("Cancel", id="cancel", color="error", variant="outlined", click=app.cancel,
                disabled=("!busy",))
    v3.VProgressLinear(model_value=("progress",), height=8, classes="mt-2", color="primary",
                       id="progress")
    html.Div("{{ stage }}{{ busy ? ' (' + progress + ' %)' : '' }}", id="stage", classes="text-caption")


def _display_panel(app) -> None:
    html.Div("Heatmap", classes="text-subtitle-2 mt-3")
    v3.VSwitch(label="Show heatmap", v_model=("heat_visible",), id="heatmap-switch", density="compact",
               hide_details=True, color="primary")
    v3.VSlider(label="Opacity", v_model=("heat_opacity",), min=0, max=1, step=0.05, density="compact",
               hide_details=True, id="heatmap-opacity")
    v3.VSlider(label="Threshold", v_model=("heat_threshold",), min=0, max=1, step=0.05, density="compact",
               hide_details=True, id="heatmap-threshold")
    html.Div(classes="covidct-legend mt-1", id="colour-legend")
    with html.Div(classes="d-flex justify-space-between text-caption"):
        html.Span("0 (no evidence)")
        html.Span("COVID-19 evidence")
        html.Span("1")
    html.Div("Window", classes="text-subtitle-2 mt-3")
    with html.Div(classes="d-flex ga-2"):
        for preset in WINDOW_PRESETS_HU:
            v3.VBtn(preset.capitalize(), id=f"window-{preset}", size="small", variant="outlined",
                    click=(app.set_window, f"['{preset}']"), disabled=("!scan_loaded",))


def _review_area(app) -> None:
    with html.Div(classes="covidct-views", id="views"):
        with html.Div(classes="covidct-view-labels"):
            html.Span("Original")
            html.Span("Enhanced{{ has_result ? '' : ' (after Analyze)' }}")
        app.layout_manager.initialize_layout_grid(app.page)
    with html.Div(classes="d-flex ga-2 align-center mt-2"):
        v3.VBtn("Most suspicious slice", id="most-suspicious", color="primary", size="small",
                click=app.most_suspicious, disabled=("!has_result",))
        v3.VBtn("Previous", id="previous-key", size="small", click=(app.step_key_slice, "[-1]"),
                disabled=("!has_result",))
        v3.VBtn("Next", id="next-key", size="small", click=(app.step_key_slice, "[1]"),
                disabled=("!has_result",))
        html.Span("Slice {{ current_slice }}", v_if="current_slice >= 0", id="current-slice",
                  classes="text-body-2")
    with html.Div(v_if="has_result", classes="mt-2"):
        html.Div("COVID-19 score per slice (orange: at or above the decision threshold; click to go)",
                 classes="text-caption")
        with html.Div(classes="covidct-chart", id="score-chart"):
            html.Div(v_for="bar in slice_bars", key="bar.i", title=("'slice ' + bar.i + ': ' + bar.s",),
                     classes=("['covidct-bar', {hot: bar.hot, current: bar.i === current_slice}]",),
                     style=("{height: Math.max(bar.h, 1) + '%'}",), click=(app.jump_to, "[bar.i]"),
                     raw_attrs=[':data-slice="bar.i"'])


def _results_panel() -> None:
    with html.Div(v_if="has_result", id="results", classes="mt-3"):
        html.Div("{{ decision }}", id="decision", classes="text-h6")
        html.Div("{{ line }}", v_for="line in result_lines", key="line", classes="text-body-2")
        html.Div("Downloads", classes="text-subtitle-2 mt-2")
        with html.Div(classes="d-flex flex-wrap ga-2", id="downloads"):
            html.A("{{ file.label }}", v_for="file in downloads", key="file.href", href=("file.href",),
                   download=("file.name",), classes="text-primary")


def build_page(server, app) -> None:
    with VAppLayout(server, fill_height=True) as page:
        app.page = page
        client.Style(STYLE)
        with v3.VAppBar(density="compact", title="CovidCT - chest CT review (research use only)"):
            v3.VProgressCircular(indeterminate=True, v_if="opening", size=20, classes="mr-4")
        with v3.VNavigationDrawer(width=340, permanent=True):
            with html.Div(classes="pa-3"):
                _open_panel(app)
                html.Div("{{ scan_name }}: {{ scan_info }}", v_if="scan_loaded", id="scan-info",
                         classes="text-caption mt-2")
                _analysis_panel(app)
                v3.VAlert(text=("error_text",), v_if="error_text", type="error", density="compact",
                          id="error", classes="mt-2")
                v3.VAlert(v_for="w in warnings", key="w", text=("w",), type="warning", density="compact",
                          classes="mt-1")
                _display_panel(app)
        with v3.VMain():
            with html.Div(classes="pa-2"):
                _review_area(app)
                _results_panel()
