"""The one wire codec: arrays survive both encodings; broken bodies are CodecErrors."""

from __future__ import annotations

import numpy as np
import pytest

from trainer_client import codec


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i8", "|u1"])
def test_msgpack_round_trip_is_exact(dtype):
    a = (np.arange(24).reshape(2, 3, 4) * 1.5).astype(dtype)
    out = codec.decode(codec.encode({"a": a, "n": np.float32(2.5), "l": [a[0]]}, codec.MSGPACK), codec.MSGPACK)
    assert out["a"].dtype == np.dtype(dtype) and out["a"].shape == (2, 3, 4)
    np.testing.assert_array_equal(out["a"], a)
    np.testing.assert_array_equal(out["l"][0], a[0])
    assert out["n"] == 2.5


def test_json_round_trip_gives_nested_lists():
    a = np.array([[0.25, -1.0], [3.0, 4.5]], dtype=np.float32)
    out = codec.decode(codec.encode({"a": a}, codec.JSON), codec.JSON)
    assert out == {"a": [[0.25, -1.0], [3.0, 4.5]]}


@pytest.mark.parametrize("body,media", [(b"\xc1", codec.MSGPACK), (b"{", codec.JSON),
                                        (b"\x93\x01", codec.MSGPACK)])
def test_malformed_bodies_raise_codec_errors(body, media):
    with pytest.raises(codec.CodecError):
        codec.decode(body, media)


def test_media_type_parsing():
    assert codec.is_msgpack("application/x-msgpack; charset=binary")
    assert codec.is_json("Application/JSON")
    assert not codec.is_json("text/plain")
    with pytest.raises(codec.CodecError):
        codec.encode({}, "text/csv")


def test_empty_strided_and_zero_dimensional_arrays_survive_msgpack():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = codec.decode(codec.encode({"empty": np.zeros((0, 5)), "column": a[:, 1], "scalar": np.array(2.5)},
                                    codec.MSGPACK), codec.MSGPACK)
    assert out["empty"].shape == (0, 5)
    np.testing.assert_array_equal(out["column"], [1, 5, 9])
    assert out["scalar"].shape == () and out["scalar"] == 2.5
