"""The workbench's panes, one per tab: Models, Calibration, Quantize, Results, Layers, Compare.

Each pane owns its widgets, their ids and their handlers; the job monitor (launch, resume,
sweep, the worker's events) lives with Quantize (:mod:`.monitor`). The app (:mod:`tui.app`)
owns the session, the runners and the routing between panes.
"""
