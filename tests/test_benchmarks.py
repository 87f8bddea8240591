"""The benchmark runs (tiny mode) and prints one well-formed JSON object per line.
No timing is asserted here: speed is reported by `python -m benchmarks`, not tested."""

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
    expected = ["forward ours/torch", "backward compact ours/torch", "backward node-by-node/compact", "fold:"]
    if list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        expected += ["notebook run time:", "notebook memory"]
    for prefix in expected:
        assert any(name.startswith(prefix) for name in names), prefix
