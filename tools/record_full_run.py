"""Record notebook 06's FULL_RUN: ``python -m tools.record_full_run [--jobs 2]``.

Trains the paper-length runs of notebook 06 (Figure 1's networks for 50,000 steps, and the
longer regularization runs) and writes them to ``data/bn_in_a_network_full_run.json``, which
the notebook loads in its quick default instead of training for an hour. After recording,
copy the printed sha256 into ``FULL_RUN_SHA256`` in ``helpers/lessons/bn_in_a_network.py`` and
into ``data/README.md``; ``tests/test_lessons_bn_in_a_network.py`` checks the file against it
and recomputes the first records of two runs fresh.

Maintainers only: about an hour of CPU time (one run per job, one torch thread each).
"""

from __future__ import annotations

import argparse
import time

from helpers.lessons import bn_in_a_network


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    parser.add_argument("--output", default=None, help="where to write (default: data/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path, sha256 = bn_in_a_network.record_full_run(args.output, jobs=args.jobs)
    print(f"wrote {path} in {time.perf_counter() - started:.0f} s")
    print(f"sha256 {sha256}")
    if sha256 != bn_in_a_network.FULL_RUN_SHA256:
        print("this is not the FULL_RUN_SHA256 in helpers/lessons/bn_in_a_network.py: "
              "if the change is intended, update it there and in data/README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
