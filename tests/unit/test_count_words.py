"""Counts read right in one: "1 class folder", "1 epoch"."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import Dataset, check_class_labels
from engine.errors import DataError
from engine.present import qat_note
from engine.report import Qat, Report


def test_one_class_folder_is_singular() -> None:
    data = Dataset(np.zeros((2, 4), "float32"), np.zeros(2, "int64"), "imgs/", ("cats",))
    with pytest.raises(DataError) as err:
        check_class_labels(data, "data.test", 3)
    assert "1 class folder (cats) but the model has 3 classes" in str(err.value)
    two = Dataset(data.x, data.y, "imgs/", ("cats", "dogs"))
    with pytest.raises(DataError, match=r"2 class folders \(cats, dogs\)"):
        check_class_labels(two, "data.test", 3)


def test_one_qat_epoch_is_singular() -> None:
    rep = Report(qat=Qat(epochs_run=1, metric="top1", best_val=0.5, best_epoch=1))
    assert qat_note(rep).startswith("QAT: 1 epoch, best validation top1 0.5000 at epoch 1")
    rep = Report(qat=Qat(epochs_run=2, metric="top1", best_val=0.5, best_epoch=1))
    assert qat_note(rep).startswith("QAT: 2 epochs, ")
