"""Acceptance on digits over HTTP under default-v1 (issue 7): FF ≥ 94 %; SCFF's probe ≥ 1.5 points
above the same probe on the same device with random weights (one layer of width 64, seeds 0, 1, 2).

Each run is what ``hil-train ff`` / ``hil-train scff`` does with its defaults, through the sweep
runners (:data:`trainer_client.forward_runs.SWEEP_RUNNERS`): a real server on a loopback port
with a default-v1 device shaped for the network, every measurement a ``forward`` request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer_client.forward_runs import SWEEP_RUNNERS, default_args

pytestmark = pytest.mark.slow


def test_ff_on_digits_over_http_reaches_94_percent(tmp_path: Path) -> None:
    args = default_args("ff", out=tmp_path, quiet=True, no_progress=True, eval_every=0)
    report = SWEEP_RUNNERS["ff"](args, {}, 0)
    assert report["preset"] == "default-v1" and report["backend"] == "device"
    assert report["device_calls"] >= args.epochs * 2 * (1437 // args.batch_size)  # program + a forward per layer
    assert report["test_accuracy"] >= 0.94, report["test_accuracy"]
    # goodness separates positives from negatives in every layer at the end of training
    last = report["history"][-1]
    assert all(p > n for p, n in zip(last["goodness_pos"], last["goodness_neg"]))


def test_scff_probe_beats_the_random_device_by_1_5_points(tmp_path: Path) -> None:
    args = default_args("scff", out=tmp_path, quiet=True, no_progress=True)
    assert args.hidden == [64]
    reports = [SWEEP_RUNNERS["scff"](args, {}, seed) for seed in (0, 1, 2)]
    assert all(r["sizes"] == [64, 64] and r["preset"] == "default-v1" for r in reports)
    trained = np.mean([r["probe_accuracy"] for r in reports])
    random = np.mean([r["random_probe_accuracy"] for r in reports])
    assert trained - random >= 0.015, (trained, random)
