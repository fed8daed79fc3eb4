"""Progress events of a stage run in epochs: they survive the wire, and the throttle lets
each epoch's last batch through."""

from __future__ import annotations

import json

from engine.events import Progress, ThrottledSink, event_from_dict


def test_epoch_fields_round_trip_and_old_events_still_read() -> None:
    ev = Progress("qat_train", 219, 250, "epoch 2/2 loss 0.2", epoch=2, epochs=2, batch=94,
                  batches=125)
    assert event_from_dict(json.loads(ev.to_json())) == ev
    old = {"protocol": 1, "kind": "progress", "stage": "data", "done": 3, "total": 9}
    assert event_from_dict(old) == Progress("data", 3, 9)


def test_the_throttle_passes_every_epochs_last_batch_and_the_stages_last() -> None:
    seen: list[Progress] = []
    sink = ThrottledSink(seen.append, rate=1e-6)  # everything else is throttled away
    for epoch in (1, 2, 3):
        for b in range(1, 51):
            sink(Progress("qat_train", (epoch - 1) * 50 + b, 150, epoch=epoch, epochs=3,
                          batch=b, batches=50))
    assert [(p.epoch, p.batch, p.done) for p in seen] == [
        (1, 1, 1), (1, 50, 50), (2, 50, 100), (3, 50, 150)]
