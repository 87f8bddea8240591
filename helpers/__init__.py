"""Shared code for the course *BatchNorm, from scratch*.

Modules, one job each:

- ``helpers.bn``         the numpy reference implementation (forward, backward, running stats, folding, layer)
- ``helpers.gradcheck``  centered-difference gradient checks
- ``helpers.data``       MNIST loading with checksum verification, and seeded toy data
- ``helpers.models``     torch models used in the notebooks (the paper's MLP, a small CNN)
- ``helpers.training``   a seeded training loop that records what the plots need

Importing any of them changes no global state (no seeds, styles or rcParams are set).
"""

__version__ = "0.1.0"
