"""Where the config file is (no parsing here, so asking costs no import of the parser)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "CREDROT_CONFIG"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$CREDROT_CONFIG``, else ``$XDG_CONFIG_HOME/credrot/config.yaml`` (an absolute
    ``XDG_CONFIG_HOME`` only, as the XDG spec says), else ``~/.config/credrot/config.yaml``."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "credrot" / "config.yaml"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "credrot" / "config.yaml"
