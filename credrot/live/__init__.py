"""Seeing the pool and being told about it: the live view (``credrot top``), the HTML
report, and the built-in notification plugin.

Everything here reads what the pool already records (``state.yaml``, ``rotation.log``,
the call homes) without holding the pool lock, and holds no secret.
"""
