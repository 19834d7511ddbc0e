"""Bad input over real HTTP: the status of DESIGN.md §3, a problem naming the field, the device untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgpack
import numpy as np
import pytest

from trainer_client import codec
from trainer_client.client import DeviceClient, Lease
from trainer_client.local_server import LocalServer

DEVICE = "crossbar-digits"
N_IN, N_HID, N_OUT = 64, 256, 10


@pytest.fixture(scope="module")
def held(server_url: str) -> Iterator[tuple[DeviceClient, Lease, dict]]:
    """A lease on the device with known weights programmed, and their measured snapshot."""
    client = DeviceClient(server_url)
    rng = np.random.default_rng(3)
    lease = client.lease(DEVICE, holder="bad-input tests")
    lease.program({"W0": rng.uniform(-0.2, 0.2, (N_HID, N_IN)), "b0": rng.uniform(-0.2, 0.2, N_HID),
                   "W1": rng.uniform(-0.1, 0.1, (N_OUT, N_HID)), "b1": np.zeros(N_OUT)})
    snapshot = lease.read_weights()["weights"]
    yield client, lease, snapshot
    lease.release()
    client.close()


def mp(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def raw_array(dtype: str, shape: tuple[int, ...], data: bytes | None = None) -> dict:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return {"dtype": dtype, "shape": list(shape), "data": data if data is not None else b"\0" * n}


def f32(a) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return raw_array("<f4", a.shape, a.tobytes())


GOOD_X = np.full((2, N_IN), 0.5)
MSGPACK = {"Content-Type": codec.MSGPACK}
JSON = {"Content-Type": codec.JSON}

# (name, method, path, body bytes, headers, expected status, expected field); "{token}" = our lease token
CASES = [
    ("wrong shape", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": f32(np.zeros((3, 5)))}), MSGPACK, 422, "x"),
    ("wrong weight shape", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"W0": f32(np.zeros((3, 3)))}}),
     MSGPACK, 422, "weights.W0"),
    ("complex dtype", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": raw_array("<c8", (2, N_IN))}), MSGPACK, 422, "x"),
    ("bool dtype", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"b0": raw_array("|b1", (N_HID,))}}),
     MSGPACK, 422, "weights.b0"),
    ("strings in JSON", "POST", f"/v1/devices/{DEVICE}/forward", json.dumps({"x": [["a"] * N_IN]}).encode(), JSON,
     422, "x"),
    ("ragged JSON", "POST", f"/v1/devices/{DEVICE}/forward", json.dumps({"x": [[0.1] * N_IN, [0.1]]}).encode(), JSON,
     422, "x"),
    ("NaN weight", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"W1": f32(np.full((N_OUT, N_HID), np.nan))}}),
     MSGPACK, 422, "weights.W1"),
    ("Inf input", "POST", f"/v1/devices/{DEVICE}/relax", mp({"x": f32(np.full((2, N_IN), np.inf))}), MSGPACK, 422, "x"),
    ("NaN beta in JSON", "POST", f"/v1/devices/{DEVICE}/relax", b'{"x": [[0.5]], "beta": NaN}', JSON, 422, "beta"),
    ("beyond safe read voltage", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": f32(np.full((2, N_IN), 2.0))}),
     MSGPACK, 422, "x"),
    ("weight beyond range", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"b1": f32(np.full(N_OUT, 9.0))}}),
     MSGPACK, 422, "weights.b1"),
    ("zero steps", "POST", f"/v1/devices/{DEVICE}/relax", mp({"x": f32(GOOD_X), "steps": 0}), MSGPACK, 422, "steps"),
    ("nudge without target", "POST", f"/v1/devices/{DEVICE}/relax", mp({"x": f32(GOOD_X), "beta": 0.5}), MSGPACK,
     422, "target"),
    ("unknown field", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": f32(GOOD_X), "gain": 3}), MSGPACK, 422, "gain"),
    ("unknown device", "POST", "/v1/devices/no-such-chip/forward", mp({"x": f32(GOOD_X)}), MSGPACK, 404, "device_id"),
    ("unknown layer", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": f32(GOOD_X), "layers": [7]}), MSGPACK, 404,
     "layers"),
    ("unknown weight array", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"W9": f32(np.zeros((2, 2)))}}),
     MSGPACK, 404, "weights.W9"),
    ("malformed msgpack", "PUT", f"/v1/devices/{DEVICE}/weights", b"\xc1\xff\x00garbage", MSGPACK, 400, "body"),
    ("malformed JSON", "PUT", f"/v1/devices/{DEVICE}/weights", b'{"weights": {"W0": [[1, 2]', JSON, 400, "body"),
    ("broken array map", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"b0": raw_array("<f4", (N_HID,), b"\0" * 7)}}), MSGPACK, 400, "body"),
    ("non-canonical array name", "POST", f"/v1/devices/{DEVICE}/weights:update",
     mp({"deltas": {"W01": f32(np.zeros((N_OUT, N_HID)))}}), MSGPACK, 404, "deltas.W01"),
    ("superscript array name", "PUT", f"/v1/devices/{DEVICE}/weights", mp({"weights": {"W\u00b9": f32(np.zeros((2, 2)))}}),
     MSGPACK, 404, "weights.W\u00b9"),
    ("wrong delta shape", "POST", f"/v1/devices/{DEVICE}/weights:update", mp({"deltas": {"b0": f32(np.zeros(3))}}),
     MSGPACK, 422, "deltas.b0"),
    ("huge integer in JSON", "POST", f"/v1/devices/{DEVICE}/forward", b'{"x": [[1' + b"0" * 400 + b"]]}", JSON, 422, "x"),
    ("strings as numbers", "PUT", f"/v1/devices/{DEVICE}/weights", json.dumps({"weights": {"b1": ["0.1"] * N_OUT}}).encode(),
     JSON, 422, "weights.b1"),
    ("booleans as numbers", "POST", f"/v1/devices/{DEVICE}/forward", json.dumps({"x": [[True] * N_IN]}).encode(), JSON,
     422, "x"),
    ("string step count", "POST", f"/v1/devices/{DEVICE}/relax", json.dumps({"x": GOOD_X.tolist(), "steps": "5"}).encode(),
     JSON, 422, "steps"),
    ("deeply nested JSON", "POST", f"/v1/devices/{DEVICE}/forward", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     JSON, 400, "body"),
    ("negative array shape", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": {"dtype": "<f4", "shape": [-1, N_IN],
                                                                               "data": b"\0" * 4 * N_IN}}),
     MSGPACK, 400, "body"),
    ("a call too long for the instrument", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(np.zeros((128, N_IN))), "steps": 100_000}), MSGPACK, 422, "steps"),
    ("valid array beside one beyond range", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"W1": f32(np.full((N_OUT, N_HID), 0.01)), "b1": f32(np.full(N_OUT, 9.0))}}), MSGPACK, 422,
     "weights.b1"),
    ("valid array beside a misshapen one", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"b1": f32(np.full(N_OUT, 0.01)), "W1": f32(np.zeros((3, 3)))}}), MSGPACK, 422, "weights.W1"),
    ("valid delta beside an unknown array", "POST", f"/v1/devices/{DEVICE}/weights:update",
     mp({"deltas": {"b1": f32(np.full(N_OUT, 0.05)), "W9": f32(np.zeros((2, 2)))}}), MSGPACK, 404, "deltas.W9"),
    ("int8 binary array", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": raw_array("|i1", (2, N_IN))}), MSGPACK,
     422, "x"),
    ("batch over the per-call limit", "POST", f"/v1/devices/{DEVICE}/forward", mp({"x": f32(np.zeros((8193, N_IN)))}),
     MSGPACK, 422, "x"),
    # relax with nudged phases, writes of single cells, and writes carried by a relax
    ("nudge beyond the beta limit", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "target": f32(np.zeros((2, N_OUT))), "nudges": [{"beta": 500.0, "steps": 3}]}), MSGPACK,
     422, "nudges[0].beta"),
    ("nudge of zero steps", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "target": f32(np.zeros((2, N_OUT))), "nudges": [{"beta": 0.5, "steps": 0}]}), MSGPACK,
     422, "nudges.0.steps"),
    ("nudged phase without target", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "nudges": [{"beta": 0.5, "steps": 3}]}), MSGPACK, 422, "target"),
    ("measured layer the device lacks", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "layers": [5]}), MSGPACK, 422, "layers"),
    ("nudged phases too long for the instrument", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(np.zeros((128, N_IN))), "steps": 10, "target": f32(np.zeros((128, N_OUT))),
         "nudges": [{"beta": 0.5, "steps": 40_000}]}), MSGPACK, 422, "steps"),
    ("cell index beyond the array", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [0, N_OUT], "value": f32([0.1, 0.1])}}}), MSGPACK, 422, "cells.b1.index"),
    ("cell indices out of order", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [3, 1], "value": f32([0.1, 0.1])}}}), MSGPACK, 422, "cells.b1.index"),
    ("negative cell index", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [-1], "value": f32([0.1])}}}), MSGPACK, 422, "cells.b1.index"),
    ("float cell index", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": f32([1.0]), "value": f32([0.1])}}}), MSGPACK, 422, "cells.b1.index"),
    ("cell values of another length", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [1, 2], "value": f32([0.1])}}}), MSGPACK, 422, "cells.b1"),
    ("cell value beyond range", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [1], "value": f32([9.0])}}}), MSGPACK, 422, "cells.b1.value"),
    ("cells of an unknown array", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"W9": {"index": [1], "value": f32([0.1])}}}), MSGPACK, 404, "cells.W9"),
    ("cell mask of the wrong length", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"mask": raw_array("|u1", (3,), bytes(3)), "level": [1]}}}), MSGPACK, 422, "cells.b1.mask"),
    ("cell mask with bits beyond the array", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"mask": raw_array("|u1", (2,), bytes([0, 1])), "level": [1]}}}), MSGPACK, 422,
     "cells.b1.mask"),
    ("cell level beyond the grid", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [2], "level": [400]}}}), MSGPACK, 422, "cells.b1.level"),
    ("cell level wrapping past 64 bits", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [2], "level": raw_array("<u8", (1,), np.array([2**64 - 1], "<u8").tobytes())}}}),
     MSGPACK, 422, "cells.b1.level"),
    ("cell index wrapping past 64 bits", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": raw_array("<u8", (1,), np.array([2**64 - 1], "<u8").tobytes()),
                          "value": f32([0.1])}}}), MSGPACK, 422, "cells.b1.index"),
    ("cells by index and by mask", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [2], "mask": raw_array("|u1", (2,), bytes(2)), "value": f32([0.1])}}}), MSGPACK,
     422, "cells.b1"),
    ("cells without targets", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"cells": {"b1": {"index": [2]}}}), MSGPACK, 422, "cells.b1"),
    ("whole arrays and cells at once", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"b1": f32(np.zeros(N_OUT))}, "cells": {"b1": {"index": [1], "value": f32([0.1])}}}), MSGPACK,
     422, "body"),
    ("carried write beyond range", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "program": {"weights": {"b1": f32(np.full(N_OUT, 9.0))}}}), MSGPACK, 422,
     "program.weights.b1"),
    ("carried write of the wrong shape", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "program": {"weights": {"b1": f32(np.zeros(3))}}}), MSGPACK, 422, "program.weights.b1"),
    ("carried write of the wrong shape, JSON", "POST", f"/v1/devices/{DEVICE}/relax",
     json.dumps({"x": GOOD_X.tolist(), "program": {"weights": {"b1": [0.0] * 3}}}).encode(), JSON, 422,
     "program.weights.b1"),
    ("carried write of no arrays", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "program": {"cells": {}}}), MSGPACK, 422, "program.cells"),
    ("carried write with phases the device refuses", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(np.zeros((2, 5))), "program": {"weights": {"b1": f32(np.full(N_OUT, 0.1))}}}), MSGPACK, 422, "x"),
    ("carried cells with phases the device refuses", "POST", f"/v1/devices/{DEVICE}/relax",
     mp({"x": f32(GOOD_X), "beta": 0.5, "program": {"cells": {"b1": {"index": [1], "value": f32([0.1])}}}}),
     MSGPACK, 422, "target"),
    ("unsupported content type", "PUT", f"/v1/devices/{DEVICE}/weights", b"W0=1", {"Content-Type": "text/plain"}, 415,
     "Content-Type"),
    ("fencing number not a number", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"b1": f32(np.full(N_OUT, 0.1))}}), {**MSGPACK, "X-Lease-Fencing": "1e3"}, 422, "X-Lease-Fencing"),
    ("idempotency key too long", "PUT", f"/v1/devices/{DEVICE}/weights",
     mp({"weights": {"b1": f32(np.full(N_OUT, 0.1))}}), {**MSGPACK, "Idempotency-Key": "k" * 201}, 422,
     "Idempotency-Key"),
]


@pytest.mark.parametrize("name,method,path,body,headers,status,field", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(held, server_url, name, method, path, body, headers, status, field):
    client, lease, snapshot = held
    response = httpx.request(method, server_url + path, content=body,
                             headers={**headers, "X-Lease-Token": lease.token}, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["field"] == field
    assert problem["type"].startswith("https://") and problem["title"] and problem["detail"]
    after = lease.read_weights()["weights"]
    for k, w in snapshot.items():
        np.testing.assert_array_equal(after[k], w)


def test_lease_problems_change_nothing(held, server_url):
    client, lease, snapshot = held
    url = f"{server_url}/v1/devices/{DEVICE}/weights"
    body = mp({"weights": {"b1": f32(np.full(N_OUT, 0.05))}})
    # no lease token at all
    r = httpx.put(url, content=body, headers=MSGPACK)
    assert r.status_code == 428 and r.json()["field"] == "X-Lease-Token"
    # another device's lease, on every operation that touches the device
    operations = [("PUT", "weights", body), ("POST", "weights:update", mp({"deltas": {"b1": f32(np.full(N_OUT, 0.1))}})),
                  ("POST", "forward", mp({"x": f32(GOOD_X)})), ("POST", "relax", mp({"x": f32(GOOD_X)})),
                  ("GET", "weights", None)]
    with client.lease("crossbar-digits-ideal") as other:
        for method, op, op_body in operations:
            r = httpx.request(method, f"{server_url}/v1/devices/{DEVICE}/{op}", content=op_body,
                              headers={**MSGPACK, "X-Lease-Token": other.token})
            assert r.status_code == 409 and r.json()["field"] == "X-Lease-Token", (op, r.text)
        stale_token = other.token
    # a released (stale) lease of that other device, used on it
    r = httpx.put(f"{server_url}/v1/devices/crossbar-digits-ideal/weights", content=body,
                  headers={**MSGPACK, "X-Lease-Token": stale_token})
    assert r.status_code == 409
    # a token that is not even ASCII
    r = httpx.put(url, content=body, headers={**MSGPACK, "X-Lease-Token": b"\xe9t\xe9"})
    assert r.status_code == 409 and r.json()["field"] == "X-Lease-Token"
    # someone else trying to take the held device
    r = httpx.post(f"{server_url}/v1/devices/{DEVICE}/leases", json={"holder": "intruder"})
    assert r.status_code == 409 and "bad-input tests" in r.json()["detail"]
    after = lease.read_weights()["weights"]
    for k, w in snapshot.items():
        np.testing.assert_array_equal(after[k], w)


def test_oversized_body_is_refused(tmp_path):
    """413 whether the size is declared (Content-Length) or only found while streaming."""
    limit = 100_000
    with LocalServer(extra_args=["--max-body-bytes", str(limit)]) as url, DeviceClient(url) as client:
        with client.lease(DEVICE) as lease:
            before = lease.read_weights()["weights"]
            big = mp({"weights": {"W0": f32(np.zeros((N_HID, N_IN))), "pad": b"\0" * limit}})
            headers = {**MSGPACK, "X-Lease-Token": lease.token}
            r = httpx.put(f"{url}/v1/devices/{DEVICE}/weights", content=big, headers=headers)
            assert r.status_code == 413 and r.json()["field"] == "body"

            def chunks() -> Iterator[bytes]:
                for i in range(0, len(big), 8192):
                    yield big[i:i + 8192]

            r = httpx.put(f"{url}/v1/devices/{DEVICE}/weights", content=chunks(), headers=headers)
            assert r.status_code == 413
            after = lease.read_weights()["weights"]
            for k, w in before.items():
                np.testing.assert_array_equal(after[k], w)
