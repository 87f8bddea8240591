"""The MNIST file: the right file (checksum and reference statistics), clear errors otherwise."""

import shutil

import numpy as np
import pytest

from helpers import data


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist()


def test_shapes_and_dtypes(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_train.shape == (60000,) and mnist.y_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.x_test.dtype == np.uint8
    assert mnist.y_test.shape == (10000,) and mnist.y_test.dtype == np.uint8


def test_reference_statistics(mnist):
    """The facts in data/README.md, so that a wrong file can never pass."""
    train = mnist.x_train.astype(np.float64) / 255
    test = mnist.x_test.astype(np.float64) / 255
    assert train.mean() == pytest.approx(0.130660, abs=5e-7)
    assert train.std() == pytest.approx(0.308108, abs=5e-7)
    assert test.mean() == pytest.approx(0.132515, abs=5e-7)
    assert test.std() == pytest.approx(0.310480, abs=5e-7)
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_file_checksum_is_the_documented_one():
    path = data.find_data_file()
    assert data.sha256_of(path) == data.MNIST_SHA256
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert data.MNIST_SHA256 in readme
    assert "CC BY-SA 3.0" in readme


def test_tensors_are_scaled_to_unit_interval():
    tensors = data.mnist_tensors(flatten=True)
    assert tuple(tensors.x_train.shape) == (60000, 784)
    assert str(tensors.x_train.dtype) == "torch.float32" and str(tensors.y_train.dtype) == "torch.int64"
    assert tensors.x_train.min().item() == 0.0 and tensors.x_train.max().item() == 1.0
    assert tensors.x_train.mean().item() == pytest.approx(0.130660, abs=1e-5)
    assert tuple(data.mnist_tensors().x_test.shape) == (10000, 28, 28)


def test_a_damaged_file_is_refused_with_instructions(tmp_path):
    damaged = tmp_path / "mnist.npz"
    shutil.copyfile(data.find_data_file(), damaged)
    with open(damaged, "r+b") as handle:  # flip one byte in the middle
        handle.seek(5_000_000)
        byte = handle.read(1)
        handle.seek(5_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(data.DataFileError, match="damaged.*expected ee068f36.*fresh copy of the course"):
        data.load_mnist(damaged)


def test_a_missing_file_is_refused_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(data.DataFileError, match="does not exist.*data/mnist.npz"):
        data.load_mnist(tmp_path / "nowhere.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.find_data_file() != tmp_path / "mnist.npz"  # falls back to the course's own copy
    with pytest.raises(data.DataFileError, match="was not found.*BATCHNORM_COURSE_DATA"):
        data.find_data_file("no_such_file.npz")


def test_the_environment_variable_points_at_another_copy(tmp_path, monkeypatch):
    shutil.copyfile(data.find_data_file(), tmp_path / "mnist.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.find_data_file() == tmp_path / "mnist.npz"
