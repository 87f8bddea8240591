"""Notebook 09's computations (helpers.lessons.bn_across_processes).

The core claim runs on a real gloo process group of 2 (and 3) CPU processes on 127.0.0.1: our
synchronized BN equals torch's BN on the concatenated batch (outputs, gradients of x, gamma
and beta, running mean and unbiased running variance) to 1e-10 in float64, with unequal
shards, a shard of one example and an empty one, and over whole data-parallel SGD steps.
The process machinery is tested too: errors and timeouts become WorkerFailed, the workers'
output stays out of the caller's (and a notebook cell's), and no process is left behind,
also when the caller is interrupted or killed.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.bn import batchnorm_forward
from helpers.lessons import bn_across_processes as lesson
from helpers.models import SmallCNN

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-10


def noisy_worker(rank, world_size):
    """Prints on both streams, at the Python and at the file-descriptor level."""
    print(f"NOISE from rank {rank} on stdout", flush=True)
    print(f"NOISE from rank {rank} on stderr", file=sys.stderr, flush=True)
    os.write(2, b"NOISE written to fd 2\n")
    return rank


def no_children_left():
    assert multiprocessing.active_children() == []


# --- 1. per-process BN is BN on a smaller batch -------------------------------------------------


def test_shard_outputs_normalize_each_shard_on_its_own(rng):
    x = rng.normal(3.0, 2.0, size=(12, 4))
    out = lesson.shard_outputs(x, [5, 7])
    ones, zeros = np.ones(4), np.zeros(4)
    np.testing.assert_allclose(out[:5], batchnorm_forward(x[:5], ones, zeros)[0], rtol=1e-12)
    np.testing.assert_allclose(out[5:], batchnorm_forward(x[5:], ones, zeros)[0], rtol=1e-12)
    torch.testing.assert_close(torch.from_numpy(out[5:]),
                               F.batch_norm(torch.from_numpy(x[5:]), None, None, training=True),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="add up"):
        lesson.shard_outputs(x, [5, 5])
    with pytest.raises(ValueError, match="at least 2"):
        lesson.shard_outputs(x, [1, 11])


def test_the_gap_grows_as_the_per_process_batch_shrinks_and_follows_the_first_order_formula(rng):
    x = rng.normal(size=(512, 64)) * rng.uniform(0.5, 3, 64) + rng.uniform(-5, 5, 64)
    gaps = [lesson.per_process_gap(x, n)["rms"] for n in (2, 8, 32, 128, 512)]
    assert gaps[-1] == 0 and all(a > b for a, b in zip(gaps, gaps[1:]))
    for n, gap in zip((8, 32, 128), gaps[1:4]):
        assert gap == pytest.approx(float(lesson.predicted_gap(n, 512)), rel=0.1)
    with pytest.raises(ValueError, match="divide"):
        lesson.per_process_gap(x, 7)


def test_one_pass_sums_cancel_in_float32():
    x = (np.random.default_rng(0).normal(size=2048) + 1e4).astype(np.float32)
    count, total, squares = lesson.one_pass_moments(x)
    assert count == 2048 and total.dtype == np.float32
    shortcut = squares / count - (total / count) ** 2
    assert abs(shortcut / x.astype(np.float64).var() - 1) > 0.5


# --- 3. processes --------------------------------------------------------------------------------


def test_free_port_is_bindable_on_loopback():
    import socket

    port = lesson.free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_a_worker_must_be_a_top_level_function():
    def local_worker(rank, world_size):
        return rank

    for worker in (local_worker, lambda rank, world_size: rank):
        with pytest.raises(ValueError, match="top level of a module"):
            lesson.run_processes(worker, 2)
    with pytest.raises(ValueError, match="world_size"):
        lesson.run_processes(noisy_worker, 0)
    with pytest.raises(ValueError, match="timeouts"):
        lesson.run_processes(noisy_worker, 2, timeout=0)


def test_collectives_a_stalled_peer_and_a_peer_that_leaves():
    seen = lesson.run_processes(lesson.first_steps_worker, 2, (2.0, 60.0), timeout=90)
    assert [result["all_reduce"] for result in seen] == [3.0, 3.0]
    assert all(result["all_gather"] == [[0.0, 0.0], [1.0, 10.0]] for result in seen)
    # alive but never joining: only the subgroup's timeout ends the wait
    stalled, exited = seen[0]["waited"]
    assert "RuntimeError: Timed out" in seen[0]["stalled"] and 2.0 <= stalled < 10, seen[0]["stalled"]
    assert "in a barrier of the main group instead" in seen[1]["stalled"] and seen[1]["waited"] is None
    # a peer whose process ends: gloo fails at once, long before the 60 s timeout
    assert any(reason in seen[0]["exited"] for reason in ("closed by peer", "reset by peer")), seen[0]["exited"]
    assert exited < 30, seen[0]["exited"]
    assert "process ended" in seen[1]["exited"]
    no_children_left()


def test_workers_output_stays_out_of_the_callers_output(capfd):
    assert lesson.run_processes(noisy_worker, 2, timeout=60) == [0, 1]
    shown = capfd.readouterr()
    assert "NOISE" not in shown.out and "NOISE" not in shown.err
    no_children_left()


def test_a_failing_worker_raises_worker_failed_with_its_error():
    case = lesson.equivalence_case((8, 2), (3, 5))  # 2 shards for 3 processes: every rank raises
    with pytest.raises(lesson.WorkerFailed) as failure:
        lesson.run_processes(lesson.equivalence_worker, 3, ([case],), timeout=60)
    message = str(failure.value)
    assert "ValueError: the case has 2 shards for 3 processes" in message
    assert "traceback of rank" in message
    no_children_left()


def test_a_run_past_its_timeout_is_stopped():
    started = time.monotonic()
    with pytest.raises(lesson.WorkerFailed, match="did not finish within 4 s"):
        lesson.run_processes(lesson.first_steps_worker, 2, (25.0,), timeout=4)
    assert time.monotonic() - started < 20
    no_children_left()


def _children_of(pid):
    """The pids of a process's children (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.is_file() else []


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\nState:\tZ" in status.read_text())


def _has_imported_torch(pid):
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text(errors="replace")
    except OSError:
        return False


def _start_script_with_workers():
    """A Python process that runs two workers which would wait for 25 s, in a session of
    its own (as Jupyter starts a kernel); returns it and its workers' pids once both run."""
    script = textwrap.dedent("""
        from helpers.lessons import bn_across_processes as lesson
        if __name__ == "__main__":
            lesson.run_processes(lesson.first_steps_worker, 2, (25.0,), timeout=120)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = [pid for pid in _children_of(process.pid)
                   if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        if len(workers) == 2 and all(_has_imported_torch(pid) for pid in workers):
            # A loaded machine can take many seconds to import torch in a spawned worker; a
            # worker killed off before that would only notice its parent's death afterwards.
            time.sleep(1.0)  # let them get into the group
            return process, workers
        time.sleep(0.2)
    process.kill()
    pytest.fail("the workers did not start within 120 s")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers (Linux)")
@pytest.mark.parametrize("whom", ["the caller", "its process group"])
def test_interrupting_the_caller_stops_its_workers(whom):
    process, workers = _start_script_with_workers()
    if whom == "the caller":
        process.send_signal(signal.SIGINT)
    else:  # what Jupyter's interrupt does to a kernel started in its own session
        os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_workers_end_when_the_caller_is_killed():
    process, workers = _start_script_with_workers()
    process.kill()  # a kernel killed or restarted: no finally block runs
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def test_run_processes_output_in_a_notebook_cell_is_clean():
    """From a kernel (as in the notebook), the cell shows only what the cell prints itself."""
    from tools.kernels import KernelSession

    with KernelSession(ROOT) as kernel:
        outputs = kernel.run(textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(ROOT / 'tests')!r})
            from helpers.lessons import bn_across_processes as lesson
            import test_lessons_bn_across_processes as here
            print(lesson.run_processes(here.noisy_worker, 2))
            print(lesson.run_processes(lesson.first_steps_worker, 2, (0.2,))[0]["all_reduce"])
        """), "running workers from a kernel")
    streams = [(output.get("name"), output.get("text", "")) for output in outputs
               if output.get("output_type") == "stream"]
    assert streams and all(name == "stdout" for name, _ in streams), streams
    text = "".join(text for _, text in streams)
    assert text.split() == ["[0,", "1]", "3.0"], text
    assert "encryption" not in text and "NOISE" not in text


# --- 4. the synchronized layer against torch's BN on the concatenated batch -----------------------


@pytest.fixture(scope="module")
def equivalence_runs():
    cases = [lesson.equivalence_case((64, 6), (23, 41)),
             lesson.equivalence_case((20, 3, 4, 5), (7, 13)),
             lesson.equivalence_case((30, 2, 3, 3), (15, 15), momentum=0.3, seed=5)]
    per_rank = lesson.run_processes(lesson.equivalence_worker, 2, (cases,), timeout=120)
    return cases, per_rank


def test_sync_bn_equals_bn_on_the_whole_batch_on_two_processes(equivalence_runs):
    cases, per_rank = equivalence_runs
    for i, case in enumerate(cases):
        differences = lesson.compare_with_reference([results[i] for results in per_rank],
                                                    lesson.reference_run(case))
        assert set(differences["sync"]) == {"y", "dx", "dgamma", "dbeta", "running_mean", "running_var"}
        assert max(differences["sync"].values()) < TOL, (case, differences["sync"])
        # plain per-process BN is measurably different (only dbeta = sum dy does not care)
        assert min(differences["local"][k] for k in ("y", "dx", "dgamma", "running_mean", "running_var")) > 1e-3
        assert differences["local"]["dbeta"] < TOL


def test_running_variance_is_unbiased_with_the_global_count(equivalence_runs):
    cases, per_rank = equivalence_runs
    case, record = cases[0], per_rank[0][0]["sync"]
    batches, _ = lesson.make_batches(case)
    mean, var = np.zeros(6), np.ones(6)
    for x, _ in batches:
        x = x.numpy()
        mean = (1 - case["momentum"]) * mean + case["momentum"] * x.mean(axis=0)
        var = (1 - case["momentum"]) * var + case["momentum"] * x.var(axis=0, ddof=1)  # N - 1, N = 64
    np.testing.assert_allclose(record["running_mean"][-1], mean, rtol=1e-12)
    np.testing.assert_allclose(record["running_var"][-1], var, rtol=1e-12)
    np.testing.assert_allclose(per_rank[1][0]["sync"]["running_var"], record["running_var"], rtol=0, atol=1e-15)


def test_torch_sync_batchnorm_refuses_cpu_tensors_in_training(equivalence_runs):
    _, per_rank = equivalence_runs
    message = per_rank[0][0]["torch_sync_bn_on_cpu"]
    assert message.startswith("ValueError: SyncBatchNorm expected input tensor to be on GPU")
    where = lesson.quote_source(nn.SyncBatchNorm.forward, "input.device.type not in",
                                "SyncBatchNorm expected input tensor", 2)
    assert where is not None and where[0] == "torch/nn/modules/batchnorm.py"
    source = Path(torch.__file__).parent / "nn" / "modules" / "batchnorm.py"
    assert "if input.device.type not in [" in source.read_text().splitlines()[where[1] - 1]


def test_the_quoted_torch_lines_exist_in_the_installed_torch():
    from torch.nn.modules import _functions

    quotes = [(_functions.SyncBatchNorm.forward, "if size == 1 and world_size < 2", "Expected more than 1 value", 1),
              (nn.SyncBatchNorm.forward, "Don't sync batchnorm stats", "is_initialized()", 1),
              (nn.parallel.DistributedDataParallel._sync_buffers, "The process with rank 0",
               "authoritative_rank = 0", 0)]
    for quote in quotes:
        where = lesson.quote_source(*quote)
        assert where is not None, quote
        assert quote[1] in where[2] and quote[2] in where[2]
    assert lesson.quote_source(nn.SyncBatchNorm.forward, "no such line", "x") is None
    assert "has no lines from 'no such line'" in lesson.show_source(nn.SyncBatchNorm.forward, "no such line", "x")
    shown = lesson.show_source(*quotes[0])
    assert shown.startswith("torch/nn/modules/_functions.py, from line ") and torch.__version__ in shown


def test_a_shard_of_one_and_an_empty_shard_on_three_processes():
    case = lesson.equivalence_case((32, 4), (1, 0, 31))
    per_rank = lesson.run_processes(lesson.equivalence_worker, 3, ([case],), timeout=120)
    differences = lesson.compare_with_reference([results[0] for results in per_rank],
                                                lesson.reference_run(case))
    assert max(differences["sync"].values()) < TOL, differences["sync"]
    assert "Expected more than 1 value per channel" in differences["local"]
    assert per_rank[1][0]["sync"]["y"].shape == (3, 0, 4)  # 3 steps, no rows
    no_children_left()


def test_data_parallel_sgd_with_sync_bn_equals_one_process_on_the_whole_batch():
    measured = lesson.run_processes(lesson.experiments_worker, 2, ([], [1, 4097], 3), timeout=120)
    assert measured[0]["equivalence"] == []
    judge = lesson.reference_training(2)
    for kind, close in (("sync", True), ("local", False)):
        for result in measured:
            state = result["training"][kind]["state"]
            worst = max(np.abs(state[name] - judge[name]).max() for name in judge
                        if "num_batches" not in name)
            assert (worst < TOL) == close, (kind, worst)
    assert set(measured[0]["allreduce"]) == {1, 4097}
    assert all(seconds > 0 for seconds in measured[0]["allreduce"].values())


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device: torch.nn.SyncBatchNorm only synchronizes GPU tensors, so "
                           "the comparison of our layer with it needs one")
def test_ours_and_torch_sync_batchnorm_agree_on_cuda():
    case = lesson.equivalence_case((64, 6), (23, 41))
    per_rank = lesson.run_processes(lesson.cuda_comparison_worker, 2, (case,), timeout=180)
    differences = lesson.compare_with_reference(per_rank, lesson.reference_run(case), kinds=("ours", "torch"))
    for who, row in differences.items():
        assert max(row.values()) < TOL, (who, row)


# --- the layer in one process --------------------------------------------------------------------


def test_outside_a_process_group_the_layer_is_plain_bn(rng):
    x = torch.from_numpy(rng.normal(2.0, 3.0, size=(10, 3, 4, 4)))
    ours, theirs = lesson.SyncBatchNorm(3, dtype=torch.float64), nn.BatchNorm2d(3, dtype=torch.float64)
    for _ in range(2):
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-12, atol=0)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x[:1]), theirs(x[:1]), rtol=1e-12, atol=1e-12)
    cumulative = lesson.SyncBatchNorm(3, momentum=None, dtype=torch.float64)
    reference = nn.BatchNorm2d(3, momentum=None, dtype=torch.float64)
    for batch in (x, 2 * x + 1):
        cumulative(batch)
        reference(batch)
    torch.testing.assert_close(cumulative.running_mean, reference.running_mean, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="expected"):
        ours(torch.zeros(4, 5))


def test_convert_to_sync_keeps_parameters_and_buffers():
    model = SmallCNN(seed=0)
    model(torch.rand(4, 1, 28, 28))  # move the running statistics away from (0, 1)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    converted = lesson.convert_to_sync(model)
    assert lesson.bn_widths(converted) == [16, 32]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in converted.modules())
    after = converted.state_dict()
    assert set(after) == set(before)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


# --- 6. costs ------------------------------------------------------------------------------------


def test_resnet50_layout_matches_torchvision():
    widths = lesson.resnet50_bn_widths()
    assert len(widths) == 53 and sum(widths) == 26_560
    assert widths[:5] == [64, 64, 64, 256, 256] and widths[-3:] == [512, 512, 2048]
    assert lesson.resnet50_parameter_count() == 25_557_032  # torchvision's resnet50


def test_sync_numbers_and_ring_bytes():
    assert lesson.sync_numbers([16, 32]) == {"forward": 98, "backward": 96, "collectives": 4}
    assert lesson.ring_bytes_sent(100, 4) == 2 * 3 / 4 * 100 * 4
    assert lesson.ring_bytes_sent(100, 4, "all_gather", bytes_per_number=8) == 3 * 100 * 8
    with pytest.raises(ValueError, match="operation"):
        lesson.ring_bytes_sent(100, 4, "broadcast")
