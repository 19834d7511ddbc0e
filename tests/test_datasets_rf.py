"""The RF drone set loader: the published split from the data directory, verified by checksum."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import DATA_DIR
from trainer_client.datasets import RF_FILE, RF_SHA256, DatasetError, load


def test_rf_set_loads_with_its_published_split():
    data = load("rf", DATA_DIR)
    assert data.x_train.shape == (702, 256) and data.x_test.shape == (298, 256)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_train)) == set(range(10)) and data.n_classes == 10
    assert data.sha256 == RF_SHA256


def test_rf_set_refuses_a_corrupt_or_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="missing"):
        load("rf", tmp_path)
    copy = tmp_path / RF_FILE
    shutil.copy(DATA_DIR / "rf" / RF_FILE, copy)
    raw = bytearray(copy.read_bytes())
    raw[-100] ^= 0xFF
    copy.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="checksum"):
        load("rf", tmp_path)
