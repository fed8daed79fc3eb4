"""A PyTorch config on a machine without torch: one line saying how to install it, before a
run folder exists. torch is blocked in the child the way Python documents for a missing
package (``sys.modules["torch"] = None``), since this machine has it installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from commands import child_env, one_line

JOB = """
[model]
torch = "models.py:build"
weights = "model.pt"
input_shape = [1, 32, 32]
[data.calibration]
kind = "synthetic"
generator = "digits"
split = "calibration"
count = 10
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = 10
[output]
runs_dir = "runs"
"""


def test_a_pytorch_config_without_torch_is_one_line_saying_how_to_install_it(
        tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("import torch\n\ndef build():\n    return None\n")
    (tmp_path / "model.pt").write_bytes(b"not read")
    (tmp_path / "job.toml").write_text(JOB)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from engine.cli import main\n"
            f"sys.exit(main(['run', {str(tmp_path / 'job.toml')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=child_env(), cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert "torch is not installed" in line and 'pip install -e ".[torch]"' in line
    assert "download.pytorch.org/whl/cpu" in line
    assert not (tmp_path / "runs").exists()
