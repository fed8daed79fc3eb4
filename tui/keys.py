"""The app's tabs, keys, palette commands and help text, in one place."""

from __future__ import annotations

from textual.binding import Binding

TABS = ("models", "calibration", "quantize", "results", "layers", "compare")
TAB_TITLES = ("Models", "Calibration", "Quantize", "Results", "Layers", "Compare")
# Where focus goes when a tab is shown, so the tab's own keys work at once.
TAB_FOCUS = {
    "models": "#picker",
    # The pane, not its first field: a tab never opens on a text field, so q, the digits and
    # ? act the same on every tab; Tab goes into the fields.
    "calibration": "#pane-calibration",
    "quantize": "#k-quantization--method",
    "results": "#pane-results",
    "layers": "#layer-table",
    "compare": "#cmp-table",
}


def _tab_bindings() -> list[Binding]:
    out = []
    for i, tab in enumerate(TABS):
        out.append(Binding(f"f{i + 2}", f"show_tab('{tab}')", TAB_TITLES[i], id=f"tab_{tab}",
                           show=False, priority=True))
        out.append(Binding(str(i + 1), f"show_tab('{tab}')", TAB_TITLES[i], id=f"tab_{tab}_digit",
                           show=False))
    return out


BINDINGS = [
    Binding("ctrl+r", "launch", "Launch", id="launch", priority=True),
    Binding("ctrl+t", "cancel", "Cancel", id="cancel", priority=True),
    Binding("ctrl+s", "save", "Save", id="save", priority=True),
    Binding("ctrl+o", "open", "Open", id="open", priority=True, show=False),
    Binding("f1", "help", "Help", id="help", priority=True),
    Binding("question_mark", "help", "Help", id="help_key", show=False),
    # Ctrl+Q quits from anywhere, typing or not (shown: the way out of a field); q does the
    # same wherever letters are not text: in a text field it is a letter.
    Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    Binding("q", "quit", "Quit", id="quit_key", show=False),
    Binding("escape", "focus_pane", "Leave field", id="leave_field", show=False),
    *_tab_bindings(),
]


#: Textual's own palette entries that ours cover ("Keys" is a second, partial help).
COVERED = frozenset({"Keys"})


def commands() -> list[tuple[str, str, str]]:
    """(title, help, action) of every palette entry."""
    from .panes.layers import COLUMNS  # noqa: PLC0415 - after the first paint

    cmds: list[tuple[str, str, str]] = [
        ("Launch the job", "run the tuned settings in the worker (Ctrl+R)", "launch"),
        ("Cancel the job", "stop the running job; the run is marked cancelled (Ctrl+T)", "cancel"),
        ("Save settings as a job config", "a commented TOML you can run with artq run (Ctrl+S)", "save"),
        ("Open a config or model", "file picker (Ctrl+O)", "open"),
        ("Help", "every key (F1)", "help"),
        ("Check the calibration data", "preview, statistics and diagnostics", "check_data"),
        ("Refresh runs", "read the runs folder again", "refresh"),
        ("Sweep settings (artq sweep)", "every combination of KEY=V1,V2 values, side by side",
         "sweep"),
        ("Resume the highlighted QAT run", "continue from its last epoch checkpoint", "resume"),
        ("Tune from the highlighted run", "use the config that run ran with", "tune_run"),
        ("Compare: swap A and B", "", "compare_swap"),
        ("Compare: the two latest runs", "", "compare_latest"),
        ("Layers: reverse the sort", "(r)", "layers('reverse')"),
        ("Layers: CPU layers only", "toggle (u)", "layers('cpu')"),
        ("Layers: suspect layers only", "toggle (x)", "layers('suspect')"),
        ("Layers: search", "(/)", "layers('search')"),
    ]
    for i, tab in enumerate(TABS):
        cmds.append((f"Show {TAB_TITLES[i]}", f"tab {i + 1} (F{i + 2})", f"show_tab('{tab}')"))
    for key, header, desc in COLUMNS:
        cmds.append((f"Layers: sort by {header}", "largest first" if desc else "smallest first",
                     f"layers('sort:{key}')"))
    return cmds


HELP_SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Anywhere", [
        ("Ctrl+R", "launch the job with the tuned settings"),
        ("Ctrl+T", "cancel the running job (the run is kept, marked cancelled)"),
        ("Ctrl+S", "save the tuned settings as a commented job config"),
        ("Ctrl+O", "open a job config or a model file"),
        ("Ctrl+P", "command palette: every action by name"),
        ("F1  ?", "this help"),
        ("F2…F7  1…6", "tabs: Models, Calibration, Quantize, Results, Layers, Compare"),
        ("Tab  Shift+Tab", "next / previous field"),
        ("Esc", "leave a field (then letters and digits act as keys)"),
        ("Ctrl+Q", "quit, from anywhere (while a job runs it asks first; quitting cancels it)"),
        ("q", "the same, on every tab, unless a text field has the cursor: there q is a "
              "letter (Esc leaves the field)"),
        ("Esc  q", "close a dialog (q: unless typing in its field)"),
    ]),
    ("1 Models", [("↑ ↓  Enter", "a sample config: tune it; a run: read its results")]),
    ("2 Calibration", [("type, Tab", "sample count (guide 100–500), seed, data, preprocessing"),
                       ("Kind, Path", "each split's data: synthetic, npz, npy-dir or images; "
                                      "Browse… (Enter) picks the file or folder"),
                       ("Inputs, Labels", "an .npz's own arrays, with shapes and dtypes"),
                       ("Raw", "on: images, preprocessed; off: model-ready arrays fed as "
                               "stored (preprocessing then off)"),
                       ("Enter", "in a field: check the data again; a problem is said "
                                 "beside its field"),
                       ("Check data", "preview, statistics and diagnostics (automatic on open)")]),
    ("3 Quantize", [("Method", "PTQ or QAT; QAT uses epochs and learning rate"),
                    ("", "stages show elapsed and time left; QAT charts loss and metric")]),
    ("4 Results", [("↑ ↓  PgUp PgDn", "scroll the run's verdict, stage table (FP32/FP16/INT8 "
                                       "metrics, size, drop), N6 estimate, findings and advice"),
                   ("1 Models  Enter", "show another past run here")]),
    ("5 Layers", [("s / t", "sort by the next column / by estimated time"),
                  ("r", "reverse the sort"), ("u", "CPU layers only"),
                  ("x", "suspect layers only"), ("/", "search op, name or reason"),
                  ("↑ ↓", "the detail pane follows the cursor")]),
    ("Sweeps", [("Ctrl+P sweep", "artq sweep on the tuned settings: KEY=V1,V2 …; the "
                                  "table and chart land in 6 Compare")]),
    ("6 Compare", [("A / B", "pick two runs; B − A for every metric and setting"),
                   ("palette", "'Compare: swap A and B', 'Compare: the two latest runs'")]),
]
