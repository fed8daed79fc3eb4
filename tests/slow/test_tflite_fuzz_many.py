"""Ten times the fast fuzz test's mutants (tests/unit/test_tflite_fuzz.py), each through
the reader, the NPU analysis and every rendering: seconds per hundred, so it runs with the
costly tests."""

from __future__ import annotations

import json
import random

import pytest
from unit.test_tflite_fuzz import RAW, _mutant, _sources

from engine.errors import EngineError
from engine.npu import analyze
from engine.tflite import read_model_bytes


def test_many_more_mutants_never_crash_the_analysis(capsys: pytest.CaptureFixture[str]) -> None:
    """Ten times the mutants on another seed, through the reader, the analysis and every
    rendering in process (the CLI's own start-up would dominate)."""
    from engine.cli.inspect import _print_human

    rng = random.Random(14)
    for name, good, mutants in _sources(10):
        spans = read_model_bytes(good).buffer_spans
        for k in range(mutants):
            data = _mutant(good, spans, rng)
            try:
                a = analyze(read_model_bytes(data, f"{name}_{k}.tflite"))
            except EngineError as exc:
                text = str(exc)
                assert "\n" not in text and not any(w in text for w in RAW), (name, k, text)
                continue
            json.dumps(a.to_dict())
            a.to_markdown()
            _print_human(a)
            capsys.readouterr()
