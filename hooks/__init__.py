"""The pre-commit hook ``qwen-review`` (entry module and prompt template).

The folder is ``hooks/`` in the source tree and is installed as the package
``credrot_hooks``, so no bare top-level module named ``hooks`` ends up on sys.path.
The hook holds no rotation logic: the pure parts live in :mod:`credrot.review`, the
rotation in :mod:`credrot.wrapper`.
"""
