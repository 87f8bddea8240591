"""Each notebook's run time on a fresh kernel in its quick default, and the kernel's peak memory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.common import Result, at_most

ROOT = Path(__file__).resolve().parent.parent
#: Notebooks with training experiments (06, 07, 08) or worker processes (09) get a longer budget: 60 s.
LONG_NOTEBOOKS = ("06_", "07_", "08_", "09_")
# The kernel's own high-water mark of resident memory (VmHWM, Linux). Not getrusage's
# ru_maxrss: Linux carries that over from the process that started the kernel, so it is only
# the fallback where /proc is missing (macOS reports it in bytes, Linux in KiB).
PEAK_MEMORY_CELL = """\
import json, re, sys
try:
    status = open('/proc/self/status').read()
    peak_kib = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))
except OSError:
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kib //= 1024 if sys.platform == 'darwin' else 1
print(json.dumps({'peak_rss_kib': peak_kib}))"""


def execute(path: Path) -> tuple[float, float]:
    """Run the notebook on a fresh kernel; return (seconds, peak RSS of the kernel in MB)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_MEMORY_CELL))
    os.environ.setdefault("BATCHNORM_COURSE_PROGRESS", "0")
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    peak_kib = json.loads(printed.strip().splitlines()[-1])["peak_rss_kib"]
    return seconds, peak_kib / 1024


def run(tiny: bool = False) -> list[Result]:
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if tiny:
        paths = paths[:1]
    results, total = [], 0.0
    for path in paths:
        seconds, peak_mb = execute(path)
        total += seconds
        limit = 60 if path.name.startswith(LONG_NOTEBOOKS) else 30
        results += [
            at_most(f"notebook run time: {path.stem}", seconds, "s", limit),
            at_most(f"notebook memory (peak RSS): {path.stem}", peak_mb, "MB", 1536),
        ]
    if not tiny:
        results.append(at_most("notebook series run time", total, "s", 240))
    return results
