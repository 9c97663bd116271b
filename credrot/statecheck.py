"""What a state file read from disk must be before it is believed: each value fits its
field, and a hand-edited YAML file holds no anchors (a tiny file that expands to a
billion nodes). Kept apart from :mod:`credrot.state` so that module is the layout only."""

from __future__ import annotations

import math
from typing import Any


class CorruptState(ValueError):
    pass


#: Counters and account numbers stay below this; times between 1970 and the year 5000.
_MAX_INT = 1 << 53
_MAX_TIME = 95_617_584_000.0


def checked(kind: str, value: object) -> tuple[bool, object]:
    """(True, value) when ``value`` fits a field annotated ``kind``, else (False, None).

    The kinds are the annotations of the dataclasses of :mod:`credrot.state` (``int``,
    ``float | None``, ``str``, ...): a field added later is checked by its annotation
    with no new code.
    """
    optional = kind.endswith("| None")
    base = kind.removesuffix("| None").strip()
    if value is None:
        return optional, None
    if base == "str":
        return isinstance(value, str) and len(value) <= 10_000, value
    if base == "bool":
        return isinstance(value, bool), value
    if base.startswith("dict["):
        # A mapping of plain records (quota windows): its own module checks each entry.
        return isinstance(value, dict) and len(value) <= 256, value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False, None
    if base == "int":
        return isinstance(value, int) and 0 <= value < _MAX_INT, value
    if base == "float":
        return math.isfinite(value) and 0 <= value <= _MAX_TIME, float(value)
    return True, value  # a kind this check does not know: kept as JSON gave it


def load_yaml(text: str) -> Any:
    """A hand-edited state file in block YAML (imported only then: PyYAML is slow to load)."""
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        # Events first (cheap, nothing expanded): a state file has no use for anchors,
        # and aliases are how a 369-byte file becomes a billion nodes.
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise CorruptState("YAML anchors and aliases are not allowed")
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except CorruptState:
        raise
    except RecursionError:
        raise CorruptState("nested too deeply") from None
    except Exception as exc:
        # (not only yaml.YAMLError: the C loader keeps the error classes of the first
        # import of yaml, which a re-import no longer matches)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CorruptState(f"not YAML: {first}") from None
