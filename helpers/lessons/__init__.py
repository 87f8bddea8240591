"""Each notebook's computations, one module per notebook, named by its slug (``helpers.course``).

A lesson module uses the library (``helpers.bn``, ``gradcheck``, ``data``, ``models``,
``training``, ``norms``) and never another lesson: code that two notebooks need moves down
into the library.
"""
