"""What the simulated tools print, word for word as the real CLIs (FACTS.md,
tests/conformance/transcripts).
"""

from __future__ import annotations

import time

from credrot_sim.base import (
    _MONTH_NAMES,
    _clock,
    _day_suffix,
)

QWEN_VERSION = "0.12.0-sim"


QWEN_QUOTA_TEXT = "Qwen OAuth quota exceeded: Your free daily quota has been reached."


QWEN_QUOTA_UPSELL_TEXT = (
    "To continue using Qwen Code without waiting, upgrade to the Alibaba Cloud Coding Plan:\n"
    "  China:       https://help.aliyun.com/zh/model-studio/coding-plan\n"
    "  Global/Intl: https://www.alibabacloud.com/help/en/model-studio/coding-plan\n"
    "\n"
    "After subscribing, run /auth to configure your Coding Plan API key."
)


#: The whole message of the error the CLI throws on a Qwen OAuth quota (one blank line
#: between the two parts); text mode prints it four times, json modes put it in ``result``.
QWEN_QUOTA_MESSAGE = f"{QWEN_QUOTA_TEXT}\n\n{QWEN_QUOTA_UPSELL_TEXT}"


QWEN_CRITICAL_ERROR_TEXT = "An unexpected critical error occurred:"


QWEN_RATE_LIMIT_TEXT = "[API Error: 429 Requests rate limit exceeded, please try again later.]"


QWEN_RATE_LIMIT_HINT_TEXT = (
    "Possible quota limitations in place or slow response times detected. "
    "Please wait and try again later."
)


QWEN_DISCONTINUED_TEXT = (
    "Qwen OAuth free tier was discontinued on 2026-04-15. "
    "Run /auth to switch to another authentication method."
)


QWEN_AUTH_401_TEXT = "[API Error: 401 Incorrect API key provided.]"


QWEN_CONNECTION_TEXT = "[API Error: Connection error.]"


QWEN_DEVICE_AUTH_TITLE = "Qwen OAuth Device Authorization"


QWEN_DEVICE_AUTH_WAITING_TEXT = "Waiting for authorization to complete..."


QWEN_DEVICE_AUTH_TIMEOUT_TEXT = "Authorization timeout, please restart the process."


QWEN_NO_INPUT_TEXT = (
    "No input provided via stdin. Input can be provided by piping data into qwen "
    "or using the --prompt option."
)


# The frames 0.12.0 prints under "Error: ..." (the path is made up; line numbers are real).
_QWEN_CLI_JS = "file:///usr/lib/node_modules/@qwen-code/qwen-code/cli.js"


_QWEN_STACK = (
    f"    at {_QWEN_CLI_JS}:407466:19\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n"
    f"    at async main ({_QWEN_CLI_JS}:457306:5)\n"
)


# The error each outcome ends in: what text mode repeats and json modes put in `result`.
# A 429 carries the CLI's rate-limit hint on a second line; a connection error does not.
_QWEN_ERROR_MESSAGE: dict[str, str] = {
    "quota": QWEN_QUOTA_MESSAGE,
    "rate_limit": f"{QWEN_RATE_LIMIT_TEXT}\n{QWEN_RATE_LIMIT_HINT_TEXT}",
    "auth": QWEN_AUTH_401_TEXT,
    "disabled": QWEN_DISCONTINUED_TEXT,
    "connection_error": QWEN_CONNECTION_TEXT,
}


def _qwen_text_error(outcome: str) -> str:
    """Stderr of a failed text-mode call, laid out as 0.12.0 prints it.

    The formatted error E on its own line, then E again run together with the catch-all's
    copy (``[API Error: E]``; a quota message is not wrapped, so just E), then node's
    crash report: the critical-error line and ``Error: E`` with its stack.
    """
    message = _QWEN_ERROR_MESSAGE[outcome]
    again = message if outcome == "quota" else f"[API Error: {message}]"
    return (
        f"{message}\n{message}{again}\n{QWEN_CRITICAL_ERROR_TEXT}\nError: {message}\n{_QWEN_STACK}"
    )


#: Full stderr of a text-mode call per outcome, as the simulator prints it.
QWEN_ERROR_OUTPUT: dict[str, str] = {
    outcome: _qwen_text_error(outcome) for outcome in _QWEN_ERROR_MESSAGE
}


# What ends up in the json ``result`` when the CLI turns an API error into exit 0.
_QWEN_JSON_ERROR_RESULT: dict[str, str] = dict(_QWEN_ERROR_MESSAGE)


CLAUDE_VERSION = "2.1.332-sim (Claude Code)"


#: 2.1.332: `5-hour` (hyphen) or `weekly`; the time in the process's zone, minutes
#: rounded down; another day adds `Dec 5, ` before the time.
CLAUDE_LIMIT_TEXT = "You've hit your {window} limit · resets {when} ({zone})"


CLAUDE_RATE_LIMIT_TEXT = (
    "API Error: Server is temporarily limiting requests (not your usage limit) · "
    "This request would exceed your account's rate limit. Please try again later."
)


CLAUDE_AUTH_TEXT = (
    "Failed to authenticate. API Error: 401 OAuth token has expired. Please obtain a new "
    "token or refresh your existing token."
)


CLAUDE_REVOKED_TEXT = (
    "Failed to authenticate: OAuth token revoked. Please log in again or contact your "
    "administrator."
)


CLAUDE_REFRESH_FAIL_TEXT = (
    "Failed to authenticate: OAuth session expired and could not be refreshed"
)


CLAUDE_NO_CREDENTIAL_TEXT = "Not logged in · Please run /login"


CLAUDE_CONNECTION_TEXT = "API Error: Connection error."


CLAUDE_NO_INPUT_TEXT = (
    "Error: Input must be provided either through stdin or as a prompt argument when using --print"
)


CODEX_VERSION = "codex-cli 0.171.0-sim"


#: A typographic apostrophe; the time is local (chrono's Local), another day
#: `Dec 5th, 2026 1:42 AM`.
CODEX_LIMIT_TEXT = (
    "You\u2019ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), "
    "visit https://chatgpt.com/settings/usage to purchase more credits or try again at "
    "{when}."
)


CODEX_RESPONSES_URL = "https://chatgpt.com/backend-api/codex/responses"


CODEX_RATE_LIMIT_TEXT = (
    "exceeded retry limit, last status: 429 Too Many Requests, request id: {request_id}"
)


CODEX_AUTH_TEXT = (
    "unexpected status 401 Unauthorized: Provided authentication token is expired. "
    f"Please try signing in again., url: {CODEX_RESPONSES_URL}"
)


CODEX_REUSED_TEXT = (
    "Your access token could not be refreshed because your refresh token was already "
    "used. Please log out and sign in again."
)


#: The genuine CLI's answer to a spent single-use refresh token (the account is revoked).
CODEX_REFRESH_REUSED_TEXT = (
    "Your access token could not be refreshed because your refresh token was already "
    "used. Please log out and sign in again."
)


CODEX_REVOKED_TEXT = (
    "Your access token could not be refreshed because your refresh token was revoked. "
    "Please log out and sign in again."
)


CODEX_REFRESH_FAIL_TEXT = (
    "Your access token could not be refreshed because your refresh token has expired. "
    "Please log out and sign in again."
)


#: Without auth.json 0.171.0 falls back to the API-key provider, which answers 401.
CODEX_NO_CREDENTIAL_TEXT = (
    "unexpected status 401 Unauthorized: Missing bearer or basic authentication in header, "
    "url: https://api.openai.com/v1/responses"
)


#: 0.171.0 when the connection drops before the stream answers.
CODEX_CONNECTION_TEXT = "stream disconnected before completion: error sending request"


CODEX_NOT_GIT_TEXT = "Not inside a trusted directory and --skip-git-repo-check was not specified."


CODEX_NO_INPUT_TEXT = "No prompt provided via stdin."


GEMINI_VERSION = "0.61.0-sim"


GEMINI_CAPACITY_TEXT = (
    "You have exhausted your capacity on this model. Your quota will reset after {when}."
)


#: 0.61 logs this, sleeps the delay (+ up to 20 % jitter), then tries again.
GEMINI_RETRY_TEXT = "Attempt {attempt} failed: {message}. Retrying after {ms}ms..."


GEMINI_TERMINAL_QUOTA_TEXT = "TerminalQuotaError: {message}"


#: A bare 429: logged before each of its own retries, then when it gives up.
GEMINI_BACKOFF_TEXT = (
    "Attempt {attempt} failed with status 429. Retrying with backoff... _GaxiosError: {message}"
)
GEMINI_MAX_ATTEMPTS_TEXT = "Attempt {attempt} failed: {message}. Max attempts reached"


#: The line of a failed request (its report, with the request, in the temp directory) and
#: the process's last words.
GEMINI_API_ERROR_TEXT = (
    "Error when talking to Gemini API Full report available at: {report} {error}"
)
GEMINI_CRITICAL_TEXT = "An unexpected critical error occurred:[object Object]"


GEMINI_DAILY_QUOTA_TEXT = "You have exhausted your daily quota on this model."


GEMINI_RATE_LIMIT_TEXT = "Resource has been exhausted (e.g. check quota)."


GEMINI_AUTH_TEXT = (
    '{"error": {"code": 401, "message": "Request had invalid authentication credentials. '
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    'See https://developers.google.com/identity/sign-in/web/devconsole-project.", '
    '"status": "UNAUTHENTICATED"}}'
)


GEMINI_MANUAL_AUTH_TEXT = (
    "Manual authorization is required but the current session is non-interactive. Please "
    "run the Gemini CLI in an interactive terminal to log in, provide a GEMINI_API_KEY, or "
    "ensure Application Default Credentials are configured."
)


GEMINI_UNTRUSTED_TEXT = (
    "Gemini CLI is not running in a trusted directory. To proceed, either use "
    "`--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or "
    "trust this directory in interactive mode. For more details, see "
    "https://geminicli.com/docs/cli/trusted-folders/#headless-and-automated-environments"
)


GEMINI_CONNECTION_TEXT = "[API Error: fetch failed]"


GEMINI_NO_INPUT_TEXT = (
    "No input provided via stdin. Input can be provided by piping data into gemini or "
    "using the --prompt option."
)


def _claude_limit(resets_at: float) -> str:
    at = time.gmtime(int(resets_at) // 60 * 60)  # the CLI shows whole minutes, rounded down
    now = time.gmtime()
    when = _clock(at, compact=True)
    if (at.tm_year, at.tm_yday) != (now.tm_year, now.tm_yday):
        when = f"{_MONTH_NAMES[at.tm_mon - 1]} {at.tm_mday}, {when}"
    window = "5-hour" if resets_at - time.time() <= 5 * 3600 + 60 else "weekly"
    return CLAUDE_LIMIT_TEXT.format(window=window, when=when, zone="UTC")


def _codex_limit(resets_at: float) -> str:
    # chrono's Local: the zone of this process (TZ), like the real CLI
    at = time.localtime(resets_at)
    now = time.localtime()
    when = _clock(at, compact=False)
    if (at.tm_year, at.tm_yday) != (now.tm_year, now.tm_yday):
        when = (
            f"{_MONTH_NAMES[at.tm_mon - 1]} {at.tm_mday}{_day_suffix(at.tm_mday)}, "
            f"{at.tm_year} {when}"
        )
    return CODEX_LIMIT_TEXT.format(when=when)


def _gemini_duration(seconds: float) -> str:
    left = max(0, int(seconds))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    when = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{when}{secs}s"


def _gemini_limit(resets_at: float) -> str:
    """The capacity message (the API's own words, the CLI passes them on)."""
    return GEMINI_CAPACITY_TEXT.format(when=_gemini_duration(resets_at - time.time()))
