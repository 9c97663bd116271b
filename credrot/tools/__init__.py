"""The tool registry: the built-in profiles, and any other name from the config file.

Built in: ``qwen``, ``claude``, ``codex``, ``gemini`` and ``qwen-key`` (Qwen Code on API
keys); their facts are in FACTS.md. Any other name is looked up in the config file
(:mod:`credrot.config`) when first asked for, so a command for a built-in tool never reads YAML.
"""

from __future__ import annotations

from credrot.errors import ConfigError
from credrot.profile import BUILTIN_NAMES, ToolProfile
from credrot.tools.claude import CLAUDE
from credrot.tools.codex import CODEX
from credrot.tools.gemini import GEMINI
from credrot.tools.qwen import QWEN
from credrot.tools.qwen_key import QWEN_KEY

__all__ = [
    "BUILTIN",
    "CLAUDE",
    "CODEX",
    "GEMINI",
    "QWEN",
    "QWEN_KEY",
    "get_profile",
    "known_tools",
]

BUILTIN: dict[str, ToolProfile] = {
    "qwen": QWEN,
    "claude": CLAUDE,
    "codex": CODEX,
    "gemini": GEMINI,
    "qwen-key": QWEN_KEY,
}
assert set(BUILTIN) == BUILTIN_NAMES


def get_profile(tool: str | ToolProfile) -> ToolProfile:
    """A built-in profile, or one described in the config file (read only when needed)."""
    if isinstance(tool, ToolProfile):
        return tool
    if tool in BUILTIN:
        return BUILTIN[tool]
    from credrot import config  # YAML is read only for a name not built in

    found = config.load_tools()
    if tool in found:
        return found[tool]
    known = ", ".join(sorted(BUILTIN) + sorted(found))
    raise ConfigError(
        f"unknown tool {tool!r} (known: {known}; describe others in {config.config_path()})"
    )


def known_tools() -> list[str]:
    """Built-in tools, then those described in the config file."""
    from credrot import config

    return list(BUILTIN) + sorted(set(config.load_tools()) - set(BUILTIN))
