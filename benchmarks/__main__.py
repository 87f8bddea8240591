"""python -m benchmarks [--json] [--tiny] [--only kernels,fold,sliders,notebooks]"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys

GROUPS = ("kernels", "fold", "sliders", "notebooks")


def machine() -> str:
    import numpy
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, torch {torch.__version__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--tiny", action="store_true",
                        help="a fast smoke run at tiny sizes (no goal is judged)")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {sorted(unknown)}; choose from {GROUPS}")

    if not args.json:
        print(f"machine: {machine()}")
        print(f"{'benchmark':<64} {'value':>10}  {'unit':<5} {'goal':<8} met")
    missed = 0
    for group in groups:
        module = __import__(f"benchmarks.{group}", fromlist=["run"])
        for result in module.run(tiny=args.tiny):
            if args.tiny:  # tiny sizes say nothing about the goals: no verdict
                result = dataclasses.replace(result, met=None)
            missed += result.met is False
            if args.json:
                print(json.dumps(result.as_dict()), flush=True)
            else:
                met = "" if result.met is None else ("yes" if result.met else "NO")
                print(f"{result.name:<64} {result.value:>10.3g}  {result.unit:<5} {result.goal:<8} {met}",
                      flush=True)
    if not args.json:
        print(summary(missed, args.tiny))
    return 0


def summary(missed: int, tiny: bool) -> str:
    """The closing line of the table."""
    if tiny:
        return ("tiny sizes: a smoke run that checks that every benchmark runs; its figures are not "
                "measurements, and its goals are not expected to be met (the goals are for the full "
                "sizes: run `python -m benchmarks`)")
    return f"{missed} goal(s) missed" if missed else "every goal met"


if __name__ == "__main__":
    sys.exit(main())
