"""What one attempt of a call runs on (given by :func:`credrot.pool.rotation.lease`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lease:
    """The account one attempt of a call runs on, and the credential it started from."""

    index: int
    raw: bytes
    data: dict[str, object]
    #: When the attempt was given the account (epoch seconds).
    started: float
    #: The tool will refresh this token during the call (see :mod:`.refresh`).
    refresh_due: bool = False
    #: The call home reserved for the attempt (counted in flight from the lease on).
    home: Path | None = None
    #: The slot's generation when the attempt started (fencing of the write-back).
    generation: int = 0
    #: The model the call names, if any (per-model windows, see :mod:`credrot.windows`).
    model: str | None = None
    #: No other call was in flight when this one was given its account: a plain
    #: success may then be written with the next ones (:mod:`.batch`).
    alone: bool = False
