"""The workbench's panes, one per tab: Models, Calibration, Quantize, Results, Layers, Compare.

Panes own their widgets and how a report is drawn; the app owns the session, the runner
and the routing of job events (:mod:`tui.app`).
"""
