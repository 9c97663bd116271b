"""The simulator stands in for the real CLIs only while it keeps their files where the
built-in profiles say they are: a drift here would make every simulated test pass
against a layout no real tool has."""

from __future__ import annotations

import pytest

from credrot.tools import get_profile
from credrot_sim.creds import _SPECS


@pytest.mark.parametrize("tool", sorted(_SPECS))
def test_simulated_tool_keeps_its_files_where_the_profile_looks(tool: str) -> None:
    spec = _SPECS[tool]
    profile = get_profile(tool)
    assert spec.home_env == profile.home_env
    assert spec.home_dir == profile.home_dirname
    assert spec.cred_file == profile.credential_name
    assert spec.env_is_parent == profile.home_env_is_parent


def test_every_builtin_file_tool_has_a_simulator() -> None:
    from credrot.profile import BUILTIN_NAMES

    file_tools = {n for n in BUILTIN_NAMES if not get_profile(n).env_kind}
    assert file_tools <= set(_SPECS)
