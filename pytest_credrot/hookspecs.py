"""Hooks the credrot pytest plugin offers to conftest files and other plugins.

They are added with ``pytest_addhooks``; implement them in a ``conftest.py`` (or a
plugin) under the same names. All are called with keyword arguments, so an
implementation may accept only the arguments it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper, WrapperResult


@pytest.hookspec(firstresult=True)
def pytest_credrot_exhausted_outcome(
    item: pytest.Item, reason: str, when: str, results: list[WrapperResult]
) -> str | None:
    """Choose what becomes of ``item`` now that a call found no usable account.

    ``reason`` is the one-line explanation the report will carry (``credrot: all 5 qwen
    accounts exhausted (first reset ...)``); ``when`` is the phase it happened in
    (``setup`` — which includes a pool already known to be spent when the test started,
    then ``results`` is empty — or ``call``); ``results`` are the calls that found the
    pool spent.

    Return ``"xfail"``, ``"skip"`` or ``"fail"`` to override the ``credrot_exhausted``
    setting for this test, ``"keep"`` to leave the test's own outcome alone (its body
    runs even when the pool was spent before it started), or None for no opinion.
    ``--runxfail`` still turns ``"xfail"`` into ``"fail"``.
    """


@pytest.hookspec(firstresult=True)
def pytest_credrot_make_wrapper(
    config: pytest.Config, tool: str, manager: AccountManager, kwargs: dict[str, Any]
) -> Wrapper | None:
    """Supply the wrapper the ``qwen`` fixture and the ``credrot_wrapper`` factory return.

    ``manager`` is the pool of ``tool`` for this run and ``kwargs`` the keyword arguments
    the plugin would pass to :class:`credrot.wrapper.Wrapper` (``max_retries``,
    ``timeout`` and whatever the test gave the factory). Return a ``Wrapper`` (or a
    subclass), ideally built on ``manager`` so the run's summary sees its calls, or None
    to let the plugin build the default one.
    """


@pytest.hookspec
def pytest_credrot_call(
    config: pytest.Config, item: pytest.Item | None, tool: str, result: WrapperResult
) -> None:
    """Observe every call made through a wrapper of this run, when it ends.

    ``item`` is the test running at the time (None outside any test); ``result`` is the
    :class:`credrot.wrapper.WrapperResult` (it never holds a token).
    """
