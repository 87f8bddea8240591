"""Record the panels' training results: ``python -m tools.record_panel_runs [SLUG ...] [--jobs 2]``.

Some panels show networks trained at each of their settings. Training inside a slider move
would take seconds, so every setting is trained once here and shipped in
``data/<slug>_panel_runs.json`` (or ``.npz``), which the panel only reads. After recording,
copy each printed sha256 into the ``PANEL_RUNS_SHA256`` (or the named constant) of
``helpers/lessons/<slug>.py`` and into ``data/README.md``; ``tests/test_lessons_<slug>.py``
checks the file against it and recomputes a sample of its entries fresh.

Maintainers only. Every run trains on one torch thread, so the files do not depend on --jobs.

Slugs (default: all): bn_in_a_network (notebook 06's network panel, about 2 minutes of CPU),
why_bn_works (notebook 07's three panels, about 1 minute), inference_statistics (notebook 04's
small trained network, seconds).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

# torch's and oneDNN's AVX2 kernels on every x86-64 CPU (AVX-512 ones round in another order):
# the tests, which recompute samples of the records, pin the same (tests/conftest.py)
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

RECORDERS = {
    # slug: (function of helpers.lessons.<slug> that records, name of its sha256 constant)
    "bn_in_a_network": ("record_panel_runs", "PANEL_RUNS_SHA256"),
    "why_bn_works": ("record_panel_runs", "PANEL_RUNS_SHA256"),
    "inference_statistics": ("record_trained_layer", "TRAINED_LAYER_SHA256"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slugs", nargs="*", help=f"which notebooks' panels, of {list(RECORDERS)} "
                        "(default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.slugs) - set(RECORDERS))
    if unknown:
        parser.error(f"no panel runs to record for {unknown}; choose from {list(RECORDERS)}")
    for slug in args.slugs or list(RECORDERS):
        function, constant = RECORDERS[slug]
        lesson = importlib.import_module(f"helpers.lessons.{slug}")
        started = time.perf_counter()
        path, sha256 = getattr(lesson, function)(jobs=args.jobs)
        print(f"{slug}: wrote {path} in {time.perf_counter() - started:.0f} s")
        print(f"{slug}: sha256 {sha256}")
        if sha256 != getattr(lesson, constant):
            print(f"{slug}: this is not the {constant} in helpers/lessons/{slug}.py: if the change "
                  "is intended, update it there and in data/README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
