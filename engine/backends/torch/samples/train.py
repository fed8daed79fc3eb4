"""Training of the bundled PyTorch digits model (``artq samples train digits_torch``):
the same rendered digits and the same preprocessing as the Keras sample (taken from the
sample's config), in NCHW."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ....samples.digits import SIZE, generate
from ..lib import require_torch


def train(out_path: Path, seed: int, epochs: int | None, log: Callable[[str], None],
          config: Path) -> dict[str, Any]:
    torch = require_torch()
    from ....config import load_config  # noqa: PLC0415
    from ....preprocess import PreprocessSpec, preprocess  # noqa: PLC0415
    from .digits import build  # noqa: PLC0415

    cfg = load_config(config)
    spec = PreprocessSpec.resolve(cfg.preprocessing, (SIZE, SIZE, 1))
    torch.manual_seed(seed)
    n_train, n_val, n_test = 12000, 1000, 2000
    epochs = epochs or 6
    batch, lr = 64, 2e-3
    t0 = time.perf_counter()
    tr, va = generate("train", n_train, seed), generate("validation", n_val, seed)
    te = generate(cfg.data.test.split, n_test, cfg.data.test.seed)
    # artq's view is N×H×W×C; a PyTorch model takes N×C×H×W.
    xtr, xva, xte = (np.ascontiguousarray(preprocess(g.images, spec).transpose(0, 3, 1, 2))
                     for g in (tr, va, te))
    ytr = torch.from_numpy(np.asarray(tr.labels, np.int64))
    log(f"data: {n_train} train, {n_val} validation, {n_test} test "
        f"({time.perf_counter() - t0:.1f} s)")
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = (n_train + batch - 1) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps, eta_min=lr * 0.02)

    def accuracy(x: np.ndarray, y: Any) -> float:
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(torch.from_numpy(x[i:i + 256])).argmax(1)
                              for i in range(0, len(x), 256)]).numpy()
        return float(np.mean(pred == np.asarray(y)))

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n_train)
        total = 0.0
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xtr[idx])), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"epoch {epoch + 1}/{epochs}: loss {total / steps:.4f}, "
            f"validation accuracy {accuracy(xva, va.labels):.4f}")
    test_acc = accuracy(xte, te.labels)
    torch.save(model.state_dict(), out_path)
    return {
        "seed": seed,
        "epochs": epochs,
        "train_items": n_train,
        "validation_items": n_val,
        "test_items": n_test,
        "batch": batch,
        "optimizer": f"Adam, {lr:g} cosine-decayed to {lr * 0.02:g}",
        "fp32_metrics": {"top1": round(test_acc, 4)},
        "train_seconds": round(time.perf_counter() - t0, 1),
        "params": int(sum(p.numel() for p in model.parameters())),
        "framework": "PyTorch",
    }
