"""The benchmark runs (tiny mode) and prints one well-formed JSON object per line; in tiny mode
it judges no goal and says so. No timing is asserted here: speed is reported by
`python -m benchmarks`, not tested."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_run_prints_json_lines():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    names = [record["name"] for record in records]
    for record in records:
        assert set(record) == {"name", "value", "unit", "goal", "met"}
        assert isinstance(record["value"], (int, float))
        assert record["met"] is None, f"tiny sizes judge no goal: {record}"
    expected = ["forward ours/torch", "backward compact ours/torch", "backward node-by-node/compact", "fold:",
                "drag frames/s:", "drag release -> final frame:"]
    if list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        expected += ["notebook run time:", "notebook memory"]
    for prefix in expected:
        assert any(name.startswith(prefix) for name in names), prefix


def test_tiny_run_says_it_is_a_smoke_run_whose_goals_are_not_expected_to_be_met():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--only", "fold"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("tiny sizes: a smoke run") and "not expected to be met" in lines[-1]
    assert "missed" not in result.stdout
    table = lines[2:-1]
    assert table and not any(line.rstrip().endswith((" NO", " yes")) for line in table), table
