"""Loggers that import :mod:`logging` only when something is logged.

``logging`` costs a tenth of a short command's start-up (it pulls in ``traceback``,
``tokenize``, ``threading``); the core logs only on the rare path (a damaged state file,
a notice), so its modules hold a :class:`LazyLogger` instead of a ``logging.Logger``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

#: Set by a command that prints the core's notices itself: the first logger made then
#: gives the ``credrot`` logger a ``NullHandler`` (as the click commands do at start).
quiet = False


class LazyLogger:
    """``logging.getLogger(name)``, made on the first message."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def _get(self) -> logging.Logger:
        if self._logger is None:
            import logging

            if quiet:
                root = logging.getLogger("credrot")
                if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
                    root.addHandler(logging.NullHandler())
            self._logger = logging.getLogger(self.name)
        return self._logger

    def debug(self, msg: str, *args: Any) -> None:
        self._get().debug(msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self._get().info(msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self._get().warning(msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self._get().error(msg, *args)
