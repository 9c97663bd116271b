"""Current Qwen Code (``qwen``) on API keys: Alibaba Cloud Coding Plan, or any
OpenAI-compatible endpoint. An account is ``KEY=value`` lines; no file is written.

What current Qwen Code reads (its bundle, 0.24): with ``OPENAI_API_KEY``,
``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` in the environment it selects the ``openai``
auth type by itself; ``--auth-type openai`` is passed as well, so a ``selectedType``
left in ``settings.json`` (``qwen-oauth`` from before 2026-04-15) cannot win. Its
``--openai-api-key`` flag would put the key in every process listing, and
``BAILIAN_CODING_PLAN_API_KEY`` only works together with ``modelProviders`` entries that
its interactive ``/auth`` writes into ``settings.json``: the three variables are the
one headless way, and credrot puts them into each call's environment.
"""

from __future__ import annotations

from datetime import timedelta

from credrot import resets
from credrot.kinds import OutcomeKind, Rule
from credrot.profile import ToolProfile
from credrot.tools.qwen import QWEN

#: The variables every account file must set: without a base URL the CLI would send
#: the key to api.openai.com, and only all three make it choose API-key auth by itself
#: (``credrot run -- ARGS`` passes the caller's arguments alone, no ``--auth-type``).
REQUIRED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL")
#: Coding Plan's base URLs (China, international), for the documentation and doctor.
CODING_PLAN_URLS = (
    "https://coding.dashscope.aliyuncs.com/v1",
    "https://coding-intl.dashscope.aliyuncs.com/v1",
)


def _validate(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not KEY=value lines"
    for key in REQUIRED:
        if key not in data:
            return f"{key} is not set"
    return None


_KEY_RULES = (
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"\[API Error: 401\b",
        r"Incorrect API key provided",
        r"\binvalid_api_key\b",
        r"\bInvalidApiKey\b",
    ),
    # the Coding Plan's hour/week/month quotas and the rate limits, as for OAuth accounts
    *(rule for rule in QWEN.rules if rule.kind is not OutcomeKind.AUTH_FAILED),
)

QWEN_KEY = ToolProfile(
    name="qwen-key",
    executable="qwen",
    # Its own pool home: the OAuth pool's state stays in ~/.qwen. Each call gets
    # QWEN_HOME = a private home linking this one's settings.json, skills, memory ...
    home_dirname=".qwen-keys",
    credential_name="api_key.env",
    home_env="QWEN_HOME",
    pool_in_home_env=False,  # QWEN_HOME names the OAuth pool; this one is ~/.qwen-keys
    credential_kind="env",
    # The chat recordings and the request logs hold the prompt.
    call_private=("projects", "debug", "tmp", "logs"),
    base_args=("--auth-type", "openai", "--output-format", "text"),
    approval_flag="--approval-mode",
    default_approval="plan",
    validate=_validate,
    rules=_KEY_RULES,
    exit_codes={41: OutcomeKind.AUTH_FAILED},
    json_error_prefixes=("[API Error:",),
    reset_parsers=(),
    # A quota that names no window: the Coding Plan's shortest, five hours.
    default_reset=resets.after(timedelta(hours=5)),
    install_hint="npm install -g @qwen-code/qwen-code",
    replaces_symlink=False,
)
