"""The MNIST file: the right file (checksum and reference statistics), clear errors otherwise."""

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

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
    with pytest.raises(data.DataFileError, match="was not found.*BATCHNORM_COURSE_DATA"):
        data.find_data_file("no_such_file.npz")


def test_the_environment_variable_points_at_another_copy(tmp_path, monkeypatch):
    shutil.copyfile(data.find_data_file(), tmp_path / "mnist.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.find_data_file() == tmp_path / "mnist.npz"


# --- damaged files, folders and the environment variable -------------------------------------


def damaged_copy(tmp_path, how):
    """A copy of mnist.npz damaged in one of several ways."""
    path = tmp_path / "mnist.npz"
    original = data.find_data_file()
    if how == "flipped byte":  # the zip's CRC-32 no longer matches
        shutil.copyfile(original, path)
        with open(path, "r+b") as handle:
            handle.seek(5_000_000)
            byte = handle.read(1)
            handle.seek(5_000_000)
            handle.write(bytes([byte[0] ^ 0xFF]))
    elif how == "truncated":
        path.write_bytes(original.read_bytes()[:3_000_000])
    elif how == "cut at the end":  # the central directory survives, the data do not
        content = original.read_bytes()
        path.write_bytes(content[:200] + bytes(len(content) - 400) + content[-200:])
    elif how == "not a zip":
        path.write_text("this is not an npz file\n")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong keys":
        np.savez(path, images=np.zeros(3))
    return path


@pytest.mark.parametrize("how", ["flipped byte", "truncated", "cut at the end", "not a zip", "empty", "wrong keys"])
def test_a_damaged_file_without_verification_is_a_data_file_error(tmp_path, how):
    path = damaged_copy(tmp_path, how)
    with pytest.raises(data.DataFileError) as raised:
        data.load_mnist(path, verify=False)
    message = str(raised.value)
    assert str(path) in message and "fresh copy of the course" in message, message
    assert "could not be read" in message, message
    with pytest.raises(data.DataFileError, match="damaged|could not be read"):
        data.load_mnist(path)  # with verification too


def test_every_zip_error_is_a_data_file_error_not_bad_zip_file(tmp_path):
    path = damaged_copy(tmp_path, "flipped byte")
    try:
        data.load_mnist(path, verify=False)
    except data.DataFileError as error:
        assert isinstance(error.__cause__, (zipfile.BadZipFile, EOFError, ValueError, OSError))
    else:
        raise AssertionError("a damaged file was loaded")


def test_a_folder_is_not_reported_as_missing(tmp_path):
    with pytest.raises(data.DataFileError, match="is a folder, not a file.*mnist.npz") as raised:
        data.load_mnist(tmp_path)
    assert "does not exist" not in str(raised.value)


def test_the_environment_variable_pointing_at_a_missing_folder_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_folder"
    monkeypatch.setenv(data.DATA_DIR_ENV, str(missing))
    with pytest.raises(data.DataFileError, match=r"BATCHNORM_COURSE_DATA.*no_such_folder.*does not exist"):
        data.find_data_file()
    with pytest.raises(data.DataFileError, match="BATCHNORM_COURSE_DATA"):
        data.load_mnist()


def test_the_environment_variable_pointing_at_a_folder_without_the_file_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hello")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataFileError, match=r"BATCHNORM_COURSE_DATA.*holds no mnist.npz.*notes.txt"):
        data.find_data_file()


def test_the_environment_variable_pointing_at_a_file_is_an_error(tmp_path, monkeypatch):
    path = damaged_copy(tmp_path, "not a zip")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(path))
    with pytest.raises(data.DataFileError, match="BATCHNORM_COURSE_DATA.*not a folder.*folder that holds"):
        data.find_data_file()


# --- panels that load data show a Notice when it cannot be loaded ----------------------------

PANELS_THAT_LOAD_DATA = textwrap.dedent("""
    import json, sys
    from helpers.panel import Notice
    from helpers.panels import all_panels
    results = {}
    for panel in all_panels():
        try:
            result = panel.compute(**panel.defaults())
        except Exception as error:  # what the test must never see
            results[panel.name] = "raised " + type(error).__name__ + ": " + str(error)
        else:
            results[panel.name] = result.text if isinstance(result, Notice) else "ok"
    json.dump(results, sys.stdout)
""")


@pytest.mark.parametrize("folder", ["empty", "damaged"])
def test_panels_show_a_notice_when_the_data_cannot_be_loaded(tmp_path, folder):
    """Run in a fresh process: the panels remember what they loaded, and this test must not make
    the rest of the session load again."""
    import json
    import os

    if folder == "damaged":
        damaged_copy(tmp_path, "truncated")
    env = dict(os.environ, BATCHNORM_COURSE_DATA=str(tmp_path), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-c", PANELS_THAT_LOAD_DATA], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    raised = {name: text for name, text in results.items() if text.startswith("raised")}
    assert not raised, raised
    notices = {name: text for name, text in results.items() if text != "ok"}
    # the panels that read MNIST, and those that read recorded runs from the same data folder
    data_notices = {name for name, text in notices.items() if str(tmp_path) in text
                    and ("MNIST" in text or "recorded" in text)}
    assert len(data_notices) >= 7, notices


# Recorded results (the panels' runs): the JSON helpers and the checksums data/README.md documents


def test_float32_values_give_back_the_same_float32_and_nan_as_none():
    values = np.array([[0.1, np.nan], [1 / 3, 1e-30]], dtype=np.float32)
    stored = data.float32_values(values)
    assert stored[0][1] is None and len(str(stored[1][0])) <= 12
    back = np.array([[np.nan if v is None else v for v in row] for row in stored], dtype=np.float32)
    np.testing.assert_array_equal(back, values)


def test_a_record_is_written_read_back_and_checked(tmp_path):
    path = tmp_path / "record.json"
    record = {"what": "a test", "entries": {"a": {"x": [1.5, None]}, "b": {"x": []}}}
    sha256 = data.write_record(path, record)
    assert sha256 == data.sha256_of(path)
    assert data.load_record(path.name, sha256, "python -m tools.x", path=path) == record
    with pytest.raises(data.DataFileError, match="python -m tools.x"):
        data.load_record(path.name, "0" * 64, "python -m tools.x", path=path)
    with pytest.raises(data.DataFileError, match="does not exist"):
        data.load_record("missing.json", sha256, "python -m tools.x", path=tmp_path / "missing.json")


def test_every_recorded_file_s_checksum_is_the_documented_one():
    from helpers.lessons import bn_in_a_network, inference_statistics, why_bn_works

    readme = (data.find_data_file().parent / "README.md").read_text(encoding="utf-8")
    for filename, sha256 in ((bn_in_a_network.PANEL_RUNS_FILENAME, bn_in_a_network.PANEL_RUNS_SHA256),
                             (why_bn_works.PANEL_RUNS_FILENAME, why_bn_works.PANEL_RUNS_SHA256),
                             (inference_statistics.TRAINED_LAYER_FILENAME,
                              inference_statistics.TRAINED_LAYER_SHA256)):
        path = data.find_data_file(filename)
        assert data.sha256_of(path) == sha256, filename
        assert f"`{filename}`" in readme and sha256 in readme, filename
        assert f"Size {path.stat().st_size:,} bytes" in readme, filename
        assert path.stat().st_size < 500_000, filename


def test_load_mnist_head_is_the_start_of_every_array():
    full = data.load_mnist()
    head = data.load_mnist_head(600, 50)
    for whole, start, n in zip(full, head, (600, 600, 50, 50)):
        assert start.dtype == whole.dtype and start.shape == (n, *whole.shape[1:])
        np.testing.assert_array_equal(start, whole[:n])
    assert [len(a) for a in data.load_mnist_head(0, 10**6)] == [0, 0, 10000, 10000]


def test_load_mnist_head_checks_the_file(tmp_path):
    damaged = tmp_path / "mnist.npz"
    damaged.write_bytes(b"not a zip")
    with pytest.raises(data.DataFileError, match="sha256"):
        data.load_mnist_head(10, 10, path=damaged)
    with pytest.raises(data.DataFileError, match="could not be read"):
        data.load_mnist_head(10, 10, path=damaged, verify=False)
    with pytest.raises(ValueError, match="0 or more"):
        data.load_mnist_head(-1, 10)
