"""How long a call waits before it retries a rate-limited account."""

from __future__ import annotations

import random
from dataclasses import dataclass

BACKOFF_KINDS = ("none", "constant", "exponential")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retrying a rate-limited account."""

    kind: str = "exponential"
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if self.kind == "none":
            return 0.0
        if retry_after is not None:
            return min(retry_after, self.cap)
        if self.kind == "constant":
            return self.base
        return float(min(self.cap, self.base * (2**attempt)) * random.uniform(0.5, 1.0))
