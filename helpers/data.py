"""Data for the course: the MNIST file shipped in ``data/`` (checked by sha256), and seeded toy data.

Nothing is downloaded: the course works offline. ``data/README.md`` gives the provenance
and the license (CC BY-SA 3.0) of ``data/mnist.npz``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from helpers.i18n import _

__all__ = [
    "MNIST",
    "MNIST_SHA256",
    "DataFileError",
    "find_data_file",
    "float32_values",
    "load_mnist",
    "load_mnist_head",
    "load_record",
    "mnist_tensors",
    "record_path",
    "write_record",
]

MNIST_FILENAME = "mnist.npz"
MNIST_SHA256 = "ee068f36682cba7f38bafdedc77b0f873ebbcf877036f7ebde566966146ac146"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Environment variable that may point at the folder holding mnist.npz.
DATA_DIR_ENV = "BATCHNORM_COURSE_DATA"

_HOW_TO_FIX = (
    "The file ships with the course in its data/ folder. Get a fresh copy of the course "
    "(git clone, or re-download the repository) so that data/mnist.npz is present and "
    "unchanged, or set the environment variable BATCHNORM_COURSE_DATA to the folder that "
    "holds a good copy."
)


class DataFileError(OSError):
    """The MNIST file is missing or is not the file the course expects."""


class MNIST(NamedTuple):
    """The MNIST arrays.

    As numpy (default): x_* uint8 (n, 28, 28), y_* uint8 (n,).
    As tensors (``mnist_tensors``): x_* float32 (n, 28, 28) in [0, 1] (or (n, 784) if
    flattened), y_* int64 (n,).
    """

    x_train: object
    y_train: object
    x_test: object
    y_test: object


def _candidate_dirs():
    env = os.environ.get(DATA_DIR_ENV)
    if env:  # the reader chose this folder: use it, and only it
        yield Path(env)
        return
    # the course folder, when helpers/ is used from a checkout (editable install or sys.path)
    yield Path(__file__).resolve().parent.parent / "data"
    cwd = Path.cwd()
    yield cwd / "data"
    yield cwd.parent / "data"


def _check_environment_folder(filename: str) -> None:
    """DataFileError if $BATCHNORM_COURSE_DATA is set but is not a folder holding ``filename``."""
    env = os.environ.get(DATA_DIR_ENV)
    if not env:
        return
    folder = Path(env)
    unset = f"or unset {DATA_DIR_ENV} to use the course's own data/ folder."
    if not folder.exists():
        raise DataFileError(
            f"{DATA_DIR_ENV} is set to {env!r}, which does not exist. Point it at the folder "
            f"that holds {filename}, {unset}"
        )
    if not folder.is_dir():
        raise DataFileError(
            f"{DATA_DIR_ENV} is set to {env!r}, which is a file, not a folder. Point it at the "
            f"folder that holds {filename} (e.g. {str(folder.parent)!r}), {unset}"
        )
    if not (folder / filename).is_file():
        names = sorted(entry.name for entry in folder.iterdir())
        found = f"it holds: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}" if names else "it is empty"
        raise DataFileError(
            f"{DATA_DIR_ENV} is set to {env!r}, a folder that holds no {filename} ({found}). "
            f"Copy a good {filename} there (the course ships one in its data/ folder), {unset}"
        )


def find_data_file(filename: str = MNIST_FILENAME) -> Path:
    """Where ``filename`` is: in $BATCHNORM_COURSE_DATA if that is set (and only there),
    otherwise in the course's data/ folder, ./data or ../data."""
    _check_environment_folder(filename)
    tried = []
    for folder in _candidate_dirs():
        path = folder / filename
        if path.is_file():
            return path
        tried.append(str(path))
    raise DataFileError(f"{filename} was not found (looked in: {', '.join(tried)}). {_HOW_TO_FIX}")


def sha256_of(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict = {}  # path -> (size, mtime) already verified in this process


def _verify(path: Path) -> None:
    stat = path.stat()
    signature = (stat.st_size, stat.st_mtime_ns)
    if _verified.get(path) == signature:
        return
    actual = sha256_of(path)
    if actual != MNIST_SHA256:
        raise DataFileError(
            f"{path} is damaged or is not the course's MNIST file: its sha256 is {actual}, "
            f"expected {MNIST_SHA256}. {_HOW_TO_FIX}"
        )
    _verified[path] = signature


def load_mnist(path=None, verify: bool = True) -> MNIST:
    """Load MNIST as numpy arrays, after checking the file's sha256.

    Args:
        path:   the .npz file; found with ``find_data_file`` if None
        verify: check the sha256 (once per process and file)

    Returns:
        MNIST(x_train (60000, 28, 28) uint8, y_train (60000,) uint8,
              x_test (10000, 28, 28) uint8, y_test (10000,) uint8)

    Raises:
        DataFileError: the file is missing, damaged or has the wrong contents.
    """
    path = _mnist_path(path)
    if verify:
        _verify(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return MNIST(*(npz[key] for key in MNIST_KEYS))
    # a damaged zip: bad CRC, truncated, not a zip at all (zipfile, zlib and numpy's errors)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise _unreadable(path, error) from error


def load_mnist_head(train_examples: int, test_examples: int, path=None,
                    verify: bool = True) -> MNIST:
    """The first ``train_examples`` training and ``test_examples`` test images and labels,
    exactly ``load_mnist()``'s arrays sliced ``[:n]``, after the same sha256 check of the
    whole file; only the bytes of those images are decompressed (fast when n is small).

    Returns:
        MNIST(x_train (n_train, 28, 28) uint8, y_train (n_train,) uint8,
              x_test (n_test, 28, 28) uint8, y_test (n_test,) uint8)

    Raises:
        ValueError: a count below 0.
        DataFileError: the file is missing, damaged or has the wrong contents.
    """
    counts = dict(x_train=int(train_examples), y_train=int(train_examples),
                  x_test=int(test_examples), y_test=int(test_examples))
    if min(counts.values()) < 0:
        raise ValueError(_("the counts must be 0 or more, got {train_examples} and {test_examples}").format(train_examples=train_examples, test_examples=test_examples))
    path = _mnist_path(path)
    if verify:
        _verify(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return MNIST(*(_npy_head(archive, key, counts[key]) for key in MNIST_KEYS))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise _unreadable(path, error) from error


def _npy_head(archive, key: str, count: int) -> np.ndarray:
    """The first ``count`` rows of the C-ordered array ``key``.npy in the zip ``archive``."""
    from numpy.lib import format as npy

    with archive.open(key + ".npy") as handle:
        version = npy.read_magic(handle)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        if fortran_order or dtype.hasobject or not shape:
            raise ValueError(_("{key}.npy is not a C-ordered array of numbers").format(key=key))
        rows = min(count, shape[0])
        size = rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        data = handle.read(size)
        if len(data) != size:
            raise EOFError(f"{key}.npy ends after {len(data)} of {size} bytes")
        return np.frombuffer(data, dtype=dtype).reshape((rows, *shape[1:])).copy()


def _mnist_path(path) -> Path:
    """The MNIST file to read (``find_data_file`` if None), checked to be a file."""
    path = find_data_file() if path is None else Path(path)
    if path.is_dir():
        raise DataFileError(
            f"{path} is a folder, not a file: pass the path of the file inside it, e.g. "
            f"{path / MNIST_FILENAME}. {_HOW_TO_FIX}"
        )
    if not path.is_file():
        raise DataFileError(f"{path} does not exist. {_HOW_TO_FIX}")
    return path


def _unreadable(path: Path, error: Exception) -> DataFileError:
    """The error for an MNIST file that is not a readable .npz with the course's arrays."""
    size = path.stat().st_size
    return DataFileError(
        f"{path} could not be read as MNIST: found a file of {size:,} bytes that is not a "
        f"readable .npz with the arrays {', '.join(MNIST_KEYS)} ({type(error).__name__}: "
        f"{error}). It is damaged or is another file. {_HOW_TO_FIX}"
    )


def mnist_tensors(path=None, flatten: bool = False, verify: bool = True) -> MNIST:
    """MNIST as torch tensors: images float32 scaled to [0, 1], labels int64.

    Args:
        flatten: return images as (n, 784) instead of (n, 28, 28)

    Returns:
        MNIST of tensors: x_train (60000, 28, 28) or (60000, 784), y_train (60000,), and
        the same for the 10,000 test images.
    """
    import torch  # imported here so that numpy-only users of this module need no torch

    arrays = load_mnist(path, verify=verify)

    def images(x):
        t = torch.from_numpy(x.astype(np.float32) / 255.0)
        return t.reshape(len(x), -1) if flatten else t

    return MNIST(
        images(arrays.x_train),
        torch.from_numpy(arrays.y_train.astype(np.int64)),
        images(arrays.x_test),
        torch.from_numpy(arrays.y_test.astype(np.int64)),
    )


# ---------------------------------------------------------------------------------------------
# Recorded results in data/: JSON files made by a maintainer command, read after a sha256 check
# ---------------------------------------------------------------------------------------------


def float32_values(values) -> list:
    """Values as the shortest decimals that give back the same float32 (NaN as None), nested
    like the array: a compact and exact way to store what float32 training produced in JSON."""
    import math

    array = np.asarray(values, dtype=np.float32)
    flat = [None if math.isnan(v) else float(str(v)) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def run_each(function, items, jobs: int = 1) -> list:
    """``[function(item) for item in items]``, in ``jobs`` spawned processes when ``jobs > 1``
    (what the maintainer commands that record training results use). ``function`` must be
    importable by name, as spawn requires."""
    items = list(items)
    if jobs <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, items))


def record_versions() -> dict:
    """The versions a record was made with: {"python", "torch", "numpy"}."""
    import platform

    import torch

    return {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
            "numpy": np.__version__}


def write_record(path, record: dict) -> str:
    """Write ``record`` as JSON (one line per top-level key and per entry of a top-level dict
    of entries, so that a diff shows which entries changed) and return the file's sha256."""
    import json

    def line(value):
        return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)

    parts = []
    for key, value in record.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = ",\n".join(f"  {line(k)}: {line(v)}" for k, v in value.items())
            parts.append(f"{line(key)}: {{\n{inner}\n}}")
        else:
            parts.append(f"{line(key)}: {line(value)}")
    path = Path(path)
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")
    return sha256_of(path)


def record_path(filename: str) -> Path:
    """Where a recorded file lives: data/ next to mnist.npz (or the working directory)."""
    try:
        return find_data_file(MNIST_FILENAME).parent / filename
    except DataFileError:
        return Path(filename)


def load_record(filename: str, sha256: str, command: str, path=None, verify: bool = True,
                what: str = "the recorded file", update: str = "its checksum in the code and in data/README.md") -> dict:
    """Read a recorded JSON file from data/ after checking its sha256.

    Args:
        filename: its name in data/
        sha256:   the checksum it must have
        command:  the maintainer command that records it (named in the error message)
        path:     read this file instead
        what, update: how the error message names the file and what a maintainer updates
    Raises:
        DataFileError: the file is missing or is not the recorded one.
    """
    import json

    path = find_data_file(filename) if path is None else Path(path)
    if not path.is_file():
        raise DataFileError(f"{path} does not exist; it ships with the course in data/.")
    if verify:
        actual = sha256_of(path)
        if actual != sha256:
            raise DataFileError(
                f"{path} is not {what}: its sha256 is {actual}, expected {sha256}. "
                f"Get a fresh copy of the course's data/ folder, or (maintainers) re-record it "
                f"with `{command}` and update {update}.")
    return json.loads(path.read_text(encoding="utf-8"))
