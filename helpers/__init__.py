"""Shared code for the course *BatchNorm, from scratch*.

The library, one job per module:

- ``helpers.bn``         the numpy reference implementation (forward, backward, running stats, folding, layer)
- ``helpers.gradcheck``  centered-difference gradient checks
- ``helpers.norms``      batch, layer, instance and group normalization: which values share statistics
- ``helpers.renorm``     Batch Renormalization (Ioffe 2017) in numpy: forward, backward, running statistics
- ``helpers.welford``    mean and variance in low precision: Welford's update, two passes, the one-pass formula
- ``helpers.frozen``     BN at fine-tuning time: FrozenBatchNorm1d/2d, freezing, recalibrating (torch)
- ``helpers.parallel_variance``  mean and variance of data held in parts: the merge of (count, mean, M2)
- ``helpers.data``       MNIST loading with checksum verification, and seeded toy data
- ``helpers.models``     torch models used in the notebooks (the paper's MLP, a small CNN)
- ``helpers.training``   a seeded training loop that records what the plots need
- ``helpers.panel``      what every interactive panel is made of (Control, Notice, Panel, PanelView)
- ``helpers.backdrop``   drawing a panel's still layer once and pasting it back on later redraws
- ``helpers.feedback``   what every exercise checker is made of (Feedback, NotAttempted)
- ``helpers.course``     the notebooks' slugs, in order
- ``helpers.i18n``       English or Chinese: ``set_language``, ``_()`` (gettext) and the CJK font for figures

And per notebook, under the notebook's slug (``helpers.course``): ``helpers.lessons.<slug>``
(its computations), ``helpers.panels.<slug>`` (its widgets), ``helpers.exercises.<slug>``
(the checkers of its exercises).

Importing any of them changes no global state (no seeds, styles or rcParams are set).
"""

__version__ = "0.1.0"

from helpers.i18n import set_language  # noqa: E402

__all__ = ["set_language"]
