"""Data sets, each with a checksum that goes into the run's provenance.

- ``digits``: scikit-learn's bundled 8×8 digits (1797 images, offline), scaled to [0, 1],
  split 80/20 stratified with a fixed seed.
- ``mnist``: the four original IDX files from a data directory, verified by SHA-256 before use.
  The public download locations are listed for machines with internet; nothing is downloaded
  unless asked (:func:`download_mnist`).
- ``rf``: the RadioSpin D62 RF-fingerprinting set (drone classification; Ross, Leroux et al.,
  Nature Nanotechnology 18, 1273 (2023); Zenodo record 7646236, CC BY 4.0): one HDF5 file with
  the published train/test split, 256 spectral power bins in [0, 1], 10 classes; verified by SHA-256.

The data directory comes from ``--data-dir`` or the ``SPINHIL_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "SPINHIL_DATA_DIR"

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
RF_FILE = "RadioSpin_D62_RF_fingerprinting.h5"
RF_SHA256 = "a9fc628d25a836f26f8ac9934f8bd1de8858306f11622a8b95b54ea4029a79d6"
RF_URL = "https://zenodo.org/records/7646236"
#: Data sets by name (``--dataset``).
DATASETS = ("digits", "mnist", "rf")
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class DatasetError(RuntimeError):
    """A data set that is missing or fails its checksum; the message says what to do."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # (n, features) float32 in [0, 1]
    y_train: np.ndarray  # (n,) int64 class labels
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    sha256: str  # of the files (MNIST) or of the arrays (digits)


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    value = explicit or os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def _sha256_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 digits, pixel values /16, stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10, _sha256_arrays(x, y))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def verify_mnist(directory: Path) -> str:
    """Check the four files' SHA-256; returns a combined digest. Raises :class:`DatasetError`."""
    combined = hashlib.sha256()
    for name, expected in MNIST_FILES.items():
        path = directory / name
        if not path.is_file():
            raise DatasetError(
                f"MNIST file {path} is missing; point --data-dir (or ${DATA_DIR_ENV}) at a folder holding "
                f"{sorted(MNIST_FILES)}, or fetch them with `hil-train download mnist --data-dir DIR`"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise DatasetError(f"MNIST file {path} fails its checksum (sha256 {digest}, expected {expected})")
        combined.update(digest.encode())
    return combined.hexdigest()


def load_mnist(directory: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST from the IDX files in ``directory`` (or ``$SPINHIL_DATA_DIR``, or its ``mnist/``)."""
    base = data_dir(directory)
    if base is None:
        raise DatasetError(f"MNIST needs a data directory: pass --data-dir or set ${DATA_DIR_ENV}")
    folder = base / "mnist" if (base / "mnist").is_dir() else base
    digest = verify_mnist(folder)
    x_tr = _read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    y_tr = _read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x_te = _read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    y_te = _read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return Dataset("mnist", x_tr, y_tr, x_te, y_te, 10, digest)


def load_rf(directory: str | os.PathLike[str] | None = None) -> Dataset:
    """The RF drone set from ``directory`` (or ``$SPINHIL_DATA_DIR``), directly or in its ``rf/``."""
    base = data_dir(directory)
    if base is None:
        raise DatasetError(f"the RF drone set needs a data directory: pass --data-dir or set ${DATA_DIR_ENV}")
    path = base / "rf" / RF_FILE if (base / "rf" / RF_FILE).is_file() else base / RF_FILE
    if not path.is_file():
        raise DatasetError(f"RF drone file {path} is missing; download {RF_FILE} from {RF_URL} into the data directory")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != RF_SHA256:
        raise DatasetError(f"RF drone file {path} fails its checksum (sha256 {digest}, expected {RF_SHA256})")
    import h5py

    with h5py.File(path, "r") as f:
        arrays = {k: f[k][...] for k in ("X_train", "Y_train", "X_test", "Y_test")}
    return Dataset("rf", arrays["X_train"].astype(np.float32), arrays["Y_train"].astype(np.int64),
                   arrays["X_test"].astype(np.float32), arrays["Y_test"].astype(np.int64), 10, digest)


def download_mnist(directory: str | os.PathLike[str]) -> Path:
    """Fetch the four MNIST files from a public mirror into ``directory`` and verify them."""
    import httpx

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_FILES.items():
        path = target / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                response = httpx.get(mirror + name, timeout=60, follow_redirects=True)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                errors.append(f"{mirror}: {exc}")
                continue
            path.write_bytes(response.content)
            break
        else:
            raise DatasetError(f"could not download {name}: {'; '.join(errors)}")
    verify_mnist(target)
    return target


def load(name: str, directory: str | os.PathLike[str] | None = None, seed: int = 0) -> Dataset:
    """A data set by name: ``digits``, ``mnist`` or ``rf``."""
    if name == "digits":
        return load_digits(seed)
    if name == "mnist":
        return load_mnist(directory)
    if name == "rf":
        return load_rf(directory)
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
