"""A class folder the loader cannot list is refused, not skipped. Run in a child process
that drops root's capabilities, so the mode bits bite even under root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT


def _image_tree(root: Path) -> None:
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        cv2.imwrite(str(root / cls / "0.png"), np.zeros((10, 12, 3), np.uint8))


def test_unreadable_class_folder_is_refused_not_skipped(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _image_tree(root)
    (root / "bird").mkdir()  # sorts first: skipping it would relabel every image
    cv2.imwrite(str(root / "bird" / "0.png"), np.zeros((4, 4), np.uint8))
    (root / "bird").chmod(0)
    code = (
        "from engine.config import DataSource\n"
        "from engine.data import load_source\n"
        "from engine.errors import InputFileError\n"
        "try:\n"
        f"    load_source(DataSource(kind='images', path={str(root)!r}), 'data.test')\n"
        "except InputFileError as exc:\n"
        "    print(exc.exit_code, exc)\n"
    )
    cmd = [sys.executable, "-c", code]
    try:
        os.listdir(root / "bird")
    except PermissionError:
        pass  # the mode bits bite this process
    else:
        # Root ignores mode bits; drop its capabilities (uid stays 0) so they bite.
        if shutil.which("setpriv") is None:
            pytest.skip("running privileged and setpriv is missing")
        cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    (root / "bird").chmod(0o755)
    if "Operation not permitted" in r.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {r.stderr.strip()}")
    assert r.stdout.startswith(f"2 {root / 'bird'}: cannot list the folder (Permission denied)"), r
