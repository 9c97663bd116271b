"""A wrong pool is not a spent pool: a missing home, no accounts, or no valid account is
a configuration error of the run, so a suite pointed at the wrong place cannot stay green
with nothing tested. Only when the user opts in (``credrot_unconfigured = skip``) are such
tests skipped instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from credrot.manager import AccountManager, PoolStatus

#: What becomes of a test whose pool cannot answer at all (``credrot_unconfigured``).
UNCONFIGURED_MODES = ("error", "skip")


UNCONFIGURED_HELP = (
    "outcome of a test whose pool is missing, empty or holds no valid credential: "
    "error (default) or skip"
)


_FIX = "point --credrot-home=PATH or the credrot_home ini key at your pool, or add accounts"


def unconfigured(manager: AccountManager, status: PoolStatus) -> str | None:
    """The one-line configuration error of a pool that cannot answer at all, else None."""
    if status.usable:
        return None
    tool, home = manager.profile.name, manager.home
    if not home.is_dir():
        return f"credrot: configuration error: the {tool} pool {home} does not exist ({_FIX})"
    if status.total == 0:
        return f"credrot: configuration error: no {tool} accounts in {home} ({_FIX})"
    if all(kind == "invalid" for kind, _until, _why in status.unusable.values()):
        return (
            f"credrot: configuration error: none of the {status.total} {tool} accounts in "
            f"{home} is a valid credential (see `credrot --tool {tool} --home {home} doctor`)"
        )
    return None


def refuse(reason: str, mode: str) -> None:
    """End the test: an error in setup (a failure in the body), or a skip if asked for."""
    if mode == "skip":
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)
