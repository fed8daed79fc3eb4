"""The TensorFlow child freezes its long-lived heap so the converter's gc.collect() skips it
(a quarter of a second per conversion), and thaws it between jobs so a warm child does not
keep the last job's objects."""

from __future__ import annotations

import gc
import weakref


class _Node:
    pass


def test_reset_releases_cycles_frozen_during_the_job() -> None:
    from engine.backends.tf.process import _clear_session

    node = _Node()
    node.me = node  # a cycle: only the collector frees it
    gone = weakref.ref(node)
    try:
        gc.freeze()  # as the child does once the job's model is loaded
        del node
        gc.collect()
        assert gone() is not None  # frozen: the collector does not see it
        _clear_session()  # the child's "reset" after the job
        assert gone() is None
        assert gc.get_freeze_count() > 0  # what survives is frozen again for the next job
    finally:
        gc.unfreeze()
