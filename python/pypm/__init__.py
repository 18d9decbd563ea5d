"""pypm: a declarative process supervisor for Python services.

The wheel installs the ``pypm`` command; this package is its Python side.
"""
