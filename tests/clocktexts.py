"""Reset times as the tools print them, some hours from now: a fixed time of day such as
``7:12pm`` is taken as just passed for the few minutes after it (``resets.GRACE``), so a
test that uses one fails at that time every day."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def claude_reset_in(hours: float) -> str:
    """``h:mm(am|pm) (UTC)``, ``hours`` from now."""
    when = datetime.now(timezone.utc) + timedelta(hours=hours)
    return f"{when.hour % 12 or 12}:{when.minute:02d}{'am' if when.hour < 12 else 'pm'} (UTC)"
