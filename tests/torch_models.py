"""Tiny PyTorch models built by the tests themselves: a model file written as a user's
``models.py`` would be, weights trained here for a few seconds (torch imported on demand)."""

from __future__ import annotations

from pathlib import Path

TINY_CODE = '''
import torch
from torch import nn
import torch.nn.functional as F


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.b1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.c3 = nn.Conv2d(32, 32, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(torch.relu(self.c2(x)), 2)
        x = torch.relu(self.c3(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def build():
    return Tiny()
'''


def write_code(folder: Path, code: str = TINY_CODE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.py"
    path.write_text(code, encoding="utf-8")
    return path


def digits(split: str, n: int, seed: int = 7):  # noqa: ANN201
    """(x as N×1×32×32 in [0, 1], labels) from the digits generator, artq's preprocessing."""
    import numpy as np

    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess
    from engine.samples.digits import generate

    spec = PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1))
    g = generate(split, n, seed)
    return np.ascontiguousarray(preprocess(g.images, spec).transpose(0, 3, 1, 2)), np.asarray(g.labels)


def train_tiny(code: Path, out: Path, items: int = 2000, epochs: int = 5) -> Path:
    """Train the model ``code`` builds on rendered digits; save its state_dict to ``out``."""
    import numpy as np
    import torch

    from engine.backends.torch.usercode import build_module

    torch.manual_seed(0)
    model = build_module(f"{code}:build", "")
    x, y = digits("train", items)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(items), items // 32):
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), out)
    return out


def skew_channel(code: Path, src: Path, dst: Path, factor: float = 90.0) -> Path:
    """The same function with a badly skewed activation range (as the Keras test's
    ``skew_activations``): c2's most active channel scaled up ``factor`` times, c3's weights
    from that channel scaled down as much. ReLU is positively homogeneous, so the float model
    is unchanged, but c2's per-tensor INT8 range now spans ``factor`` × the other channels.
    (The most active one: a channel the ReLU always zeroes would change nothing.)"""
    import torch

    from engine.backends.torch.usercode import build_module

    model = build_module(f"{code}:build", str(src))
    seen: list = []
    hook = model.c2.register_forward_hook(lambda _m, _i, o: seen.append(torch.relu(o)))
    with torch.no_grad():
        model(torch.from_numpy(digits("calibration", 64, 0)[0]))
    hook.remove()
    ch = int(seen[0].mean(dim=(0, 2, 3)).argmax())
    sd = torch.load(src, weights_only=True)
    sd["c2.weight"][ch] *= factor
    sd["c2.bias"][ch] *= factor
    sd["c3.weight"][:, ch] /= factor
    torch.save(sd, dst)
    return dst


JOB = """
name = "tiny_torch"
[model]
torch = "{code}:build"
weights = "{weights}"
input_shape = [1, 32, 32]
[data.calibration]
kind = "synthetic"
generator = "digits"
split = "calibration"
count = 200
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = {test_count}
[calibration]
samples = 100
[evaluation]
profile = "prototype"
[analysis]
debug_samples = 0
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""

QAT = """
[data.train]
kind = "synthetic"
generator = "digits"
split = "train"
count = {train}
[data.validation]
kind = "synthetic"
generator = "digits"
split = "validation"
count = 300
[quantization]
method = "qat"
[quantization.qat]
epochs = {epochs}
learning_rate = 1e-4
batch_size = 32
patience = 0
seed = 3
compare_ptq = {compare}
"""


def torch_job(tmp: Path, code: Path, weights: Path, test_count: int = 300, qat_epochs: int = 0,
              train: int = 1000, compare: bool = False) -> Path:
    text = JOB.format(code=code, weights=weights, test_count=test_count, runs=tmp / "runs")
    if qat_epochs:
        text += QAT.format(epochs=qat_epochs, train=train, compare=str(compare).lower())
    cfg = tmp / "job.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg
