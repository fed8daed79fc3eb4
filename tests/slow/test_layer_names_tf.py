"""Op names on a real conversion: a conv followed by a ReLU *layer* (fused into the conv by
the converter) and a nested model holding two Dense layers (whose tensors all start with
the nested model's path). Before, the conv was called after its ReLU and both Dense layers
after the nested model; now each op has its own name, the same in the Layers table,
layers.csv and the sensitivity entries. (The naming rules: tests/unit/test_layer_names.py.)
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
from models import tiny_job

from engine import load_config, run_job
from engine.layers import short_name


def _model(path: Path) -> Path:
    import keras

    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess
    from engine.samples.digits import generate

    keras.utils.set_random_seed(0)
    g = generate("train", 1200, 7)
    x = preprocess(g.images, PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1)))
    inp = keras.Input((32, 32, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    h = keras.layers.ReLU(name="act")(h)
    h = keras.layers.MaxPooling2D(4)(h)
    h = keras.layers.Flatten()(h)
    head = keras.Sequential([keras.layers.Dense(32, activation="relu", name="fc_a"),
                             keras.layers.Dense(32, activation="relu", name="fc_b")], name="head")
    out = keras.layers.Dense(10, activation="softmax", name="classes")(head(h))
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    m.fit(x, np.asarray(g.labels), epochs=3, batch_size=32, verbose=0)
    m.save(path)
    return path


def test_each_op_has_its_own_name_in_table_csv_and_sensitivity(tmp_path: Path) -> None:
    model = _model(tmp_path / "nested.keras")
    cfg = tiny_job(tmp_path, model)
    result = run_job(load_config(cfg, ["analysis.debug_samples=16", "analysis.sensitivity_k=8"]))
    rep = result.report.to_dict()
    assert rep["status"] == "ok"
    rows = rep["layers"]
    by_op: dict[str, list[dict]] = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    fcs = by_op["FULLY_CONNECTED"]
    assert len(fcs) == 3
    # The collision this fixes: the first path of both nested Dense tensors is head's.
    nested = [r for r in fcs if "/head" in r["name"]]
    assert len(nested) == 2 and short_name(nested[0]["name"]) == short_name(nested[1]["name"])
    # Keras's export scopes layers as name_1: the layer's own name, numbered.
    assert [re.sub(r"_\d+", "", r["layer"]) for r in nested] == ["head/fc_a", "head/fc_b"]
    (conv,) = by_op["CONV_2D"]
    assert "/act_" in conv["name"].split(";")[0]  # the converter lists the ReLU first
    assert re.fullmatch(r"conv(_\d+)?", conv["layer"]), conv["layer"]
    names = [r["layer"] for r in rows]
    assert len(set(names)) == len(names), names

    # Sensitivity entries carry the table's names; the two nested Dense layers among them.
    sens = [e for e in rep["sensitivity"] if not e.get("group")]
    layer_of = {r["name"]: r["layer"] for r in rows}
    assert sens and all(e["layer"] == layer_of[e["tensor"]] for e in sens), sens
    tried_fcs = {e["layer"] for e in sens if e["op"] == "FULLY_CONNECTED"}
    assert {r["layer"] for r in nested} <= tried_fcs
    assert len({e["layer"] for e in sens}) == len(sens)
    for e in sens:  # the advice names the op as the table does (when a mixed model exists)
        assert "path" not in e or f"`{e['layer']}`" in e["suggestion"], e

    table = list(csv.DictReader(io.StringIO((result.run_dir / "layers.csv").read_text())))
    assert [(r["name"], r["layer"]) for r in table] == [(r["name"], r["layer"]) for r in rows]
    md = (result.run_dir / "report.md").read_text()
    assert f"| {conv['layer']} |" in md or all(len(r["layer"]) > 40 for r in rows)
