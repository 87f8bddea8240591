"""Speed and memory figures for the course, printed as ratios measured in one run.

    python -m benchmarks            all groups, as a table
    python -m benchmarks --json     one JSON object per line
    python -m benchmarks --tiny     a fast smoke run (small shapes, few repeats)
    python -m benchmarks --only kernels,fold

Groups: kernels (our numpy BN vs torch), fold (eval conv->BN vs folded conv), sliders (each
panel's compute + draw), notebooks (each notebook's run time and peak memory on a fresh kernel).
No timing is asserted by the test suite; tests/test_benchmarks.py only runs the tiny mode.
"""
