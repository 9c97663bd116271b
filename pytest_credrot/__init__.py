"""pytest plugin for credrot (entry point ``pytest11``: ``credrot = pytest_credrot.plugin``).

Nothing is imported here: pytest loads :mod:`pytest_credrot.plugin` in every run of an
environment where credrot is installed, so this package must stay free to import.
"""
