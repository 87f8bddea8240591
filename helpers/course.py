"""The course's notebooks, in order, by slug: a notebook's file name without its number.

``notebooks/02_forward_transform.ipynb`` has the slug ``forward_transform``. The code that
exists for one notebook carries its slug in three places (tests/test_structure.py checks it):

- ``helpers/lessons/<slug>.py``    the notebook's computations (lessons use the library
                                   modules, never each other);
- ``helpers/panels/<slug>.py``     its interactive panels;
- ``helpers/exercises/<slug>.py``  the checkers of its exercises.

Everything else in ``helpers/`` is library code, named for what it is (``bn``, ``gradcheck``,
``data``, ``models``, ``training``, ``norms``, ...).
"""

from __future__ import annotations

from helpers.i18n import _

#: Slugs of notebooks/00_course_map.ipynb, 01_..., in course order.
NOTEBOOK_SLUGS = (
    "course_map",
    "input_normalization",
    "forward_transform",
    "backward_pass",
    "inference_statistics",
    "convolutional_bn",
    "bn_in_a_network",
    "why_bn_works",
    "bn_in_practice",
    "bn_across_processes",
)


def notebook_number(slug: str) -> int:
    """The number of the notebook called ``slug`` (``"forward_transform"`` -> 2)."""
    if slug not in NOTEBOOK_SLUGS:
        raise ValueError(_("no notebook has the slug {slug!r}; the slugs are {NOTEBOOK_SLUGS}").format(slug=slug, NOTEBOOK_SLUGS=NOTEBOOK_SLUGS))
    return NOTEBOOK_SLUGS.index(slug)
