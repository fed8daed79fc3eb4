"""The digits sample's CNN in PyTorch: the Keras digits model's layers (three blocks of two
conv-BN-ReLU, max pooling, global average pooling, a linear layer), outputting logits.

A plain model file: ``model.torch = ".../digits.py:build"`` imports it by path, as artq
imports a user's own ``models.py``.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class DigitsNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate((16, 32, 64)):
            layers += _block(cin, c) + _block(c, c)
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.logits = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(torch.flatten(self.pool(self.features(x)), 1))


def build() -> nn.Module:
    return DigitsNet()
