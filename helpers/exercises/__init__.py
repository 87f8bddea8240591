"""Exercise checkers: run the reader's function on hidden cases and say what is wrong.

Each notebook's checkers live in the module named by its slug (``helpers.exercises.<slug>``, see
``helpers.course``) and
are built from the pieces in ``helpers.feedback``.
"""
