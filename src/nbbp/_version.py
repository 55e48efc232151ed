"""nbbp's version, in a module of its own so that any module can read it without importing
the package (and all of nbbp with it)."""

__version__ = "0.2.0"
