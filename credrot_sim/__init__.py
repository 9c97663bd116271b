"""Executable stand-ins for the AI CLIs credrot rotates, for tests and ``credrot demo`` only.

A simulated tool behaves like the real one as recorded in FACTS.md: the same error texts
and exit codes, the same credential file and the same way of rewriting it (a refresh
replaces ``oauth_creds.json`` by temp file + rename, so a symlink there turns into a
regular file; a failed refresh deletes it and falls into the device authorization flow,
which polls for minutes). The "server side" is a :class:`SimBackend` directory shared by
every simulator process, so a test can set quotas, watch what was called and check that
rotation spent exactly the calls it should.

Stdlib only and no credrot imports: the installed shim imports it without ``site`` and
must start in a few tens of milliseconds. Production code never imports it (a test
checks); ``credrot demo`` and ``credrot sim`` load it only when asked to.

Behaviours worth knowing when writing tests against it:

- The prompt is ``stdin + "\\n\\n" + argv prompt`` when both exist (the CLI's own join);
  stdin alone or argv alone is recorded unchanged. Stdin counts as empty when nothing
  arrives within 0.5 s, and is cut at 8 MiB, like the CLI.
- A token is refreshed when the file's ``expiry_date`` is less than 30 s away (the CLI's
  buffer), every ``refresh_every``-th call of the account, after an unknown access token
  whose refresh token is known, and once on every call of an ``auth`` account (the CLI
  forces one refresh after a 401). ``connection_error`` accounts never refresh.
- The device authorization box goes to **stderr** (as the CLI's ``showFallbackMessage``).
  The poll ends with exit 41 after ``device_auth_timeout``; :meth:`SimBackend.approve_login`
  lets it finish (the call then proceeds and a second line lands in ``calls.jsonl``).
- Failed text-mode calls print the error as 0.12.0 does: the message, the message again run
  together with a second copy, then ``An unexpected critical error occurred:`` and
  ``Error: <message>`` with a (made-up) stack; see :data:`QWEN_ERROR_OUTPUT`.
- ``--output-format json`` prints ONE JSON array ``[system, assistant, result]``;
  ``stream-json`` prints those three objects one per line. Every API error exits 0 there,
  with the text in ``result`` (``is_error`` false, as the CLI reports it).
- ``calls.jsonl`` lines carry ``n, tool, account, argv, outcome, refreshed, home,
  output_format, model, prompt_sha256, prompt_len`` (characters), ``pid, time`` and, for
  ``hang``, ``child_pid``. Outcomes: the mode names plus ``device_auth`` and
  ``usage_error``; an ``ok`` account past its quota records ``quota``.
"""

from __future__ import annotations

from credrot_sim.backend import SimBackend
from credrot_sim.base import BACKEND_ENV, MODES
from credrot_sim.table import TOOLS, ToolSim, install, main
from credrot_sim.texts import (
    QWEN_AUTH_401_TEXT,
    QWEN_CONNECTION_TEXT,
    QWEN_CRITICAL_ERROR_TEXT,
    QWEN_DEVICE_AUTH_TIMEOUT_TEXT,
    QWEN_DEVICE_AUTH_TITLE,
    QWEN_DEVICE_AUTH_WAITING_TEXT,
    QWEN_DISCONTINUED_TEXT,
    QWEN_ERROR_OUTPUT,
    QWEN_NO_INPUT_TEXT,
    QWEN_QUOTA_MESSAGE,
    QWEN_QUOTA_TEXT,
    QWEN_QUOTA_UPSELL_TEXT,
    QWEN_RATE_LIMIT_HINT_TEXT,
    QWEN_RATE_LIMIT_TEXT,
    QWEN_VERSION,
)

__all__ = [
    "BACKEND_ENV",
    "MODES",
    "QWEN_AUTH_401_TEXT",
    "QWEN_CONNECTION_TEXT",
    "QWEN_CRITICAL_ERROR_TEXT",
    "QWEN_DEVICE_AUTH_TIMEOUT_TEXT",
    "QWEN_DEVICE_AUTH_TITLE",
    "QWEN_DEVICE_AUTH_WAITING_TEXT",
    "QWEN_DISCONTINUED_TEXT",
    "QWEN_ERROR_OUTPUT",
    "QWEN_NO_INPUT_TEXT",
    "QWEN_QUOTA_MESSAGE",
    "QWEN_QUOTA_TEXT",
    "QWEN_QUOTA_UPSELL_TEXT",
    "QWEN_RATE_LIMIT_HINT_TEXT",
    "QWEN_RATE_LIMIT_TEXT",
    "QWEN_VERSION",
    "TOOLS",
    "SimBackend",
    "ToolSim",
    "install",
    "main",
]
