"""Exercise checkers: run the reader's function on hidden cases and say what is wrong.

Each notebook's checkers live in their own module here (``helpers.exercises.<topic>``) and
are built from the pieces in ``helpers.exercises.base``.
"""
