"""Executable stand-ins for the AI CLIs credrot rotates, for tests and ``credrot demo`` only.

A simulated tool behaves like the real one as recorded in FACTS.md: the same error texts
and exit codes, the same credential file and the same way of rewriting it (a refresh
replaces ``oauth_creds.json`` by temp file + rename, so a symlink there turns into a
regular file; a failed refresh deletes it and falls into the device authorization flow,
which polls for minutes). The "server side" is a :class:`SimBackend` directory shared by
every simulator process, so a test can set quotas, watch what was called and check that
rotation spent exactly the calls it should.

Stdlib only and no credrot imports: the installed shim loads this file directly and must
start in a few tens of milliseconds. Never used by production code paths.

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

import fcntl
import hashlib
import json
import os
import select
import sys
import time
import uuid
from pathlib import Path

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

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

BACKEND_ENV = "CREDROT_SIM_BACKEND"

# --- exact texts of Qwen Code 0.12.0 (FACTS.md) ------------------------------------------

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
    return (f"{message}\n{message}{again}\n"
            f"{QWEN_CRITICAL_ERROR_TEXT}\nError: {message}\n{_QWEN_STACK}")


#: Full stderr of a text-mode call per outcome, as the simulator prints it.
QWEN_ERROR_OUTPUT: dict[str, str] = {
    outcome: _qwen_text_error(outcome) for outcome in _QWEN_ERROR_MESSAGE
}

# What ends up in the json ``result`` when the CLI turns an API error into exit 0.
_QWEN_JSON_ERROR_RESULT: dict[str, str] = dict(_QWEN_ERROR_MESSAGE)

#: Account behaviours a test can choose (see :meth:`SimBackend.add_account`).
MODES = frozenset(
    {"ok", "quota", "rate_limit", "auth", "disabled", "connection_error", "hang",
     "refresh_fail", "garbage"}
)

_QWEN_CRED_FILE = "oauth_creds.json"
_QWEN_RESOURCE_URL = "portal.qwen.ai"
_TOKEN_LIFETIME_MS = 3_600_000
_REFRESH_BUFFER_MS = 30_000  # a CLI refreshes a token this close to expiry
_STDIN_CAP = 8 * 1024 * 1024
_STDIN_FIRST_BYTE_WAIT = 0.5  # the CLI treats stdin as empty if nothing came by then
_STDIN_JOINER = "\n\n"  # the CLI builds `${stdin}\n\n${prompt}`
_EXIT_INPUT = 42
_EXIT_AUTH = 41
_ACCOUNT_FIELDS = ("quota", "mode", "refresh_every", "answer", "latency", "resets_in",
                   "limit_text")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_token() -> str:
    return os.urandom(24).hex()


class SimBackend:
    """The simulated server side: accounts, issued tokens, quotas and a call log.

    Every process touching ``root`` takes an exclusive ``flock`` on ``backend.lock``
    for each read-modify-write, so parallel simulator processes keep exact counts.
    ``backend.json`` holds tokens (it plays the server): keep it out of anything shown.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "prompts").mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"SimBackend({str(self.root)!r})"

    # --- storage ----------------------------------------------------------------------

    def _locked(self) -> _Flock:
        return _Flock(self.root / "backend.lock")

    def _load(self) -> dict[str, Any]:
        try:
            raw = (self.root / "backend.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return {
                "version": 1,
                "calls": 0,
                "accounts": {},
                "access_tokens": {},
                "refresh_tokens": {},
                "pending_logins": [],
                "settings": {"poll_interval": 2.0, "device_auth_timeout": 300.0},
            }
        state: dict[str, Any] = json.loads(raw)
        return state

    def _save(self, state: dict[str, Any]) -> None:
        path = self.root / "backend.json"
        tmp = self.root / f"backend.json.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, path)

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _snapshot(self) -> dict[str, Any]:
        with self._locked():
            return self._load()

    @staticmethod
    def _account(state: dict[str, Any], name: str) -> dict[str, Any]:
        try:
            acc: dict[str, Any] = state["accounts"][name]
        except KeyError:
            raise KeyError(f"no simulated account named {name!r}") from None
        return acc

    @staticmethod
    def _issue(state: dict[str, Any], name: str, access: str | None = None,
               refresh: str | None = None) -> None:
        """Give ``name`` a new access token (and a refresh token when one is passed)."""
        acc = state["accounts"][name]
        access = access or _new_token()
        state["access_tokens"][access] = name
        acc["access_token"] = access
        if refresh is not None:
            state["refresh_tokens"][refresh] = name
            acc["refresh_token"] = refresh
        # strictly increasing per account, so "newer credential" is decidable
        acc["expiry_date"] = max(_now_ms() + _TOKEN_LIFETIME_MS, acc["expiry_date"] + 1)

    # --- test-facing API --------------------------------------------------------------

    def add_account(
        self,
        name: str,
        *,
        quota: int | None = None,
        mode: str = "ok",
        refresh_every: int = 0,
        answer: str | None = None,
        latency: float = 0.0,
        expired: bool = False,
        access_token: str | None = None,
        refresh_token: str | None = None,
        tool: str = "qwen",
        resets_in: float | None = None,
        limit_text: str | None = None,
    ) -> dict[str, object]:
        """Register an account and return its credential in ``tool``'s format (qwen's
        ``oauth_creds.json`` by default). ``resets_in``/``limit_text``: see the Claude,
        Codex and Gemini section below."""
        _check_mode(mode)
        if tool not in _SPECS:
            raise ValueError(f"no simulator for {tool!r}; known: {', '.join(TOOLS)}")
        with self._transaction() as state:
            if name in state["accounts"]:
                raise ValueError(f"simulated account {name!r} already exists")
            for tok in (access_token, refresh_token):
                if tok is not None and (
                    tok in state["access_tokens"] or tok in state["refresh_tokens"]
                ):
                    raise ValueError(f"token already issued (account {name!r})")
            state["accounts"][name] = {
                "quota": quota, "mode": mode, "refresh_every": refresh_every,
                "answer": answer, "latency": latency,
                "used": 0, "calls": 0, "refreshes": 0, "logins": 1,
                "expiry_date": 0, "resets_in": resets_in, "limit_text": limit_text,
            }
            self._issue(state, name, access_token, refresh_token or _new_token())
            acc = state["accounts"][name]
            if expired:
                acc["expiry_date"] = _now_ms() - _TOKEN_LIFETIME_MS
            return _SPECS[tool].credential(acc, name, None)

    def credential(self, name: str) -> dict[str, object]:
        """The account's newest credential, as a fresh login would write it."""
        return _SPECS["qwen"].credential(self._account(self._snapshot(), name), name, None)

    def write_credential(self, name: str, path: Path) -> None:
        """Write the account's newest credential to ``path`` (0600, 2-space JSON, no newline).

        Temp file + rename, so a symlink at ``path`` is replaced, not followed.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(path, json.dumps(self.credential(name), indent=2))

    def set(self, name: str, **fields: object) -> None:
        """Change ``quota``, ``mode``, ``refresh_every``, ``answer`` or ``latency``."""
        unknown = sorted(set(fields) - set(_ACCOUNT_FIELDS))
        if unknown:
            raise TypeError(f"unknown account field(s): {', '.join(unknown)}")
        if "mode" in fields:
            _check_mode(fields["mode"])
        with self._transaction() as state:
            self._account(state, name).update(fields)

    def account(self, name: str) -> dict[str, object]:
        """Settings and counters of one account (``used``, ``calls``, ``refreshes``), no tokens."""
        acc = self._account(self._snapshot(), name)
        return {k: v for k, v in acc.items() if k not in ("access_token", "refresh_token")}

    def used(self, name: str) -> int:
        """Successful calls the account has served."""
        return int(self._account(self._snapshot(), name)["used"])

    def calls(self) -> list[dict[str, Any]]:
        """Every recorded decision (one per invocation; a device-flow login adds one)."""
        with self._locked():
            try:
                text = (self.root / "calls.jsonl").read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def prompt(self, n: int) -> str:
        """Full prompt text the ``n``-th invocation received."""
        return (self.root / "prompts" / str(n)).read_text(encoding="utf-8")

    def latest_token(self, name: str) -> str:
        """Newest access token issued to the account."""
        return str(self._account(self._snapshot(), name)["access_token"])

    def account_for_token(self, token: str) -> str | None:
        """Which account an access or refresh token was issued to."""
        state = self._snapshot()
        found = state["access_tokens"].get(token) or state["refresh_tokens"].get(token)
        return None if found is None else str(found)

    def configure(
        self, *, poll_interval: float | None = None, device_auth_timeout: float | None = None
    ) -> None:
        """Shorten the device flow for tests (real CLI: poll every 2 s for 300 s)."""
        with self._transaction() as state:
            if poll_interval is not None:
                state["settings"]["poll_interval"] = poll_interval
            if device_auth_timeout is not None:
                state["settings"]["device_auth_timeout"] = device_auth_timeout

    def approve_login(self, name: str) -> None:
        """Let the next polling device flow (any process) log in as ``name``.

        The login issues a new access *and* refresh token and writes the credential the
        way a first login does: through the path (a symlink there is followed).
        """
        with self._transaction() as state:
            self._account(state, name)
            state["pending_logins"].append(name)

    # --- the simulator's side -----------------------------------------------------------

    def _record(self, state: dict[str, Any], call: dict[str, Any], prompt: str) -> int:
        state["calls"] += 1
        n = int(state["calls"])
        data = prompt.encode("utf-8", "surrogatepass")
        (self.root / "prompts" / str(n)).write_bytes(data)
        call = {
            "n": n,
            **call,
            "prompt_sha256": hashlib.sha256(data).hexdigest(),
            "prompt_len": len(prompt),
            "pid": os.getpid(),
            "time": time.time(),
        }
        with open(self.root / "calls.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(call) + "\n")
        return n

    def _log_only(self, call: dict[str, Any], prompt: str = "") -> None:
        with self._transaction() as state:
            self._record(state, call, prompt)

    def _claim_login(self) -> dict[str, object] | None:
        with self._transaction() as state:
            if not state["pending_logins"]:
                return None
            name = state["pending_logins"].pop(0)
            acc = state["accounts"][name]
            acc["logins"] += 1
            self._issue(state, name, None, _new_token())
            return _SPECS["qwen"].credential(acc, name, None)

    def _settings(self) -> dict[str, float]:
        settings: dict[str, float] = self._snapshot()["settings"]
        return settings

    def _serve(self, spec: _Spec, argv: list[str], prompt: str, cred_path: Path,
               extra: dict[str, Any]) -> _Decision:
        """Decide one call of ``spec``'s tool against the shared state; apply file effects."""
        with self._transaction() as state:
            d = _Decision()
            found = spec.read(cred_path)
            if found is None:
                d.outcome = spec.missing_outcome
            else:
                self._account_call(state, d, spec, *found, cred_path)
            if d.outcome == "hang":
                import subprocess  # only this path needs it; keeps start-up short

                child = subprocess.Popen(  # same process group: a caller must kill it too
                    [sys.executable, "-S", "-c", "import time; time.sleep(600)"],
                    stdin=subprocess.DEVNULL,
                )
                extra = {**extra, "child_pid": child.pid}
            d.n = self._record(
                state,
                {"tool": spec.name, "account": d.account, "argv": argv, "outcome": d.outcome,
                 "refreshed": d.refreshed, **extra},
                prompt,
            )
            return d

    def _account_call(self, state: dict[str, Any], d: _Decision, spec: _Spec,
                      cred: dict[str, Any], toks: tuple[str, str, float],
                      cred_path: Path) -> None:
        access, refresh, expiry = toks
        name = state["access_tokens"].get(access)
        forced = False
        if name is None:  # the API answers 401; the CLI tries one refresh
            name = state["refresh_tokens"].get(refresh)
            if name is None:
                d.outcome = "auth"
                return
            forced = True
        d.account = name
        acc = state["accounts"][name]
        acc["calls"] += 1
        mode: str = acc["mode"]
        every = int(acc["refresh_every"] or 0)
        due = (
            forced
            or expiry - _REFRESH_BUFFER_MS < _now_ms()
            or (every > 0 and acc["calls"] % every == 0)
        )
        d.latency = float(acc["latency"])
        if due:
            if mode == "connection_error":  # the token endpoint is unreachable too
                d.outcome = "connection_error"
                return
            if mode == "refresh_fail":  # 400 invalid_grant
                d.outcome = "refresh_fail"
                if spec.refresh_fail_deletes:  # qwen deletes the file
                    cred_path.unlink(missing_ok=True)  # only the link when it is one
                return
            self._refresh(state, spec, name, refresh, cred, cred_path)
            d.refreshed = True
        if mode == "auth":
            if spec.refresh_on_401 and not d.refreshed:  # one forced refresh first
                self._refresh(state, spec, name, refresh, cred, cred_path)
                d.refreshed = True
            d.outcome = "auth"
        elif mode in ("ok", "garbage", "refresh_fail"):
            quota = acc["quota"]
            if quota is not None and acc["used"] >= quota:
                d.outcome = "quota"
                resets_in = acc.get("resets_in")
                d.resets_at = time.time() + float(
                    _DEFAULT_RESETS_IN if resets_in is None else resets_in)
                d.limit_text = acc.get("limit_text")
            else:
                acc["used"] += 1
                d.outcome = "garbage" if mode == "garbage" else "ok"
                d.answer_template = acc["answer"]
                d.served = int(acc["used"])
        else:
            d.outcome = mode

    def _refresh(self, state: dict[str, Any], spec: _Spec, name: str, old_refresh: str,
                 cred: dict[str, Any], cred_path: Path) -> None:
        """New access token (and refresh token where it rotates), written the tool's way."""
        if spec.rotates_refresh:
            self._issue(state, name, None, _new_token())
            state["refresh_tokens"].pop(old_refresh, None)  # the old one is spent
        else:
            self._issue(state, name)
        acc = state["accounts"][name]
        acc["refreshes"] += 1
        spec.write(cred_path, spec.credential(acc, name, cred))


class _Flock:
    """Exclusive ``flock`` on the backend's lock file; closing the fd releases it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class _Transaction:
    """Locked load ... save of ``backend.json``; nothing is saved if the body raises."""

    def __init__(self, backend: SimBackend) -> None:
        self.backend = backend
        self.lock = backend._locked()
        self.state: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.lock.__enter__()
        try:
            self.state = self.backend._load()
        except BaseException:
            self.lock.__exit__()
            raise
        return self.state

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None:
                self.backend._save(self.state)
        finally:
            self.lock.__exit__()


class _Decision:
    """What one simulated call turned out to be; the process acts on it outside the lock."""

    def __init__(self) -> None:
        self.n = 0
        self.outcome = ""
        self.account: str | None = None
        self.refreshed = False
        self.latency = 0.0
        self.answer_template: str | None = None
        self.served = 0
        self.resets_at = 0.0  # quota: when the tool says the account resets (epoch s)
        self.limit_text: str | None = None


def _check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{uuid.uuid4()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# --- the qwen executable ------------------------------------------------------------------

class _UsageError(Exception):
    pass


_QWEN_VALUE_OPTS = {
    "-p": "prompt", "--prompt": "prompt",
    "-o": "output_format", "--output-format": "output_format",
    "--auth-type": "auth_type",
    "-m": "model", "--model": "model",
    "--approval-mode": "approval_mode",
    "--channel": "channel",
    "--max-session-turns": "max_session_turns",
    "--proxy": "proxy",
}
_QWEN_BOOL_OPTS = {
    "-y": "yolo", "--yolo": "yolo",
    "--chat-recording": "chat_recording",
    "-v": "version", "--version": "version",
    "-h": "help", "--help": "help",
}
_QWEN_CHOICES = {
    "output_format": ("text", "json", "stream-json"),
    "approval_mode": ("plan", "default", "auto-edit", "yolo"),
}
_QWEN_HELP = """\
Usage: qwen [options] [query..]

Simulated Qwen Code (credrot.simulate) for tests and demos.

Options:
  -p, --prompt             Prompt (deprecated: use the positional prompt)
  -o, --output-format      text | json | stream-json
      --auth-type          qwen-oauth | openai | ...
  -m, --model              Model
  -y, --yolo               Approve every action
      --approval-mode      plan | default | auto-edit | yolo
      --chat-recording     Record chat history (boolean)
      --channel            Channel (e.g. CI)
      --max-session-turns  Maximum session turns
      --proxy              Proxy URL
  -v, --version            Show version number
  -h, --help               Show help
"""


def _parse_qwen_args(args: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"output_format": "text", "positional": []}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts["positional"].extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            opts["positional"].append(arg)
            continue
        flag, eq, inline = arg.partition("=")
        if flag in _QWEN_VALUE_OPTS:
            key = _QWEN_VALUE_OPTS[flag]
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise _UsageError(f"Not enough arguments following: {flag.lstrip('-')}")
            choices = _QWEN_CHOICES.get(key)
            if choices is not None and value not in choices:
                raise _UsageError(
                    f"Invalid values:\n  Argument: {flag.lstrip('-')}, Given: {value!r}, "
                    f"Choices: {', '.join(repr(c) for c in choices)}"
                )
            if key == "max_session_turns":
                try:
                    opts[key] = int(value)
                except ValueError:
                    raise _UsageError(
                        f"--max-session-turns expects a number, got {value!r}"
                    ) from None
                continue
            opts[key] = value
            continue
        negated = flag.startswith("--no-") and "--" + flag[5:] in _QWEN_BOOL_OPTS
        bool_flag = "--" + flag[5:] if negated else flag
        if bool_flag in _QWEN_BOOL_OPTS:
            state = not negated
            if eq:
                if inline not in ("true", "false"):
                    raise _UsageError(f"{flag} expects true or false, got {inline!r}")
                state = (inline == "true") != negated
            elif i < len(args) and args[i] in ("true", "false"):  # yargs: `--flag false`
                state = (args[i] == "true") != negated
                i += 1
            opts[_QWEN_BOOL_OPTS[bool_flag]] = state
            continue
        raise _UsageError(f"Unknown argument: {arg.lstrip('-').partition('=')[0]}")
    if opts["positional"] and opts.get("prompt") is not None:
        raise _UsageError(
            "Cannot use both a positional prompt and the --prompt (-p) flag together"
        )
    return opts


def _read_stdin() -> tuple[str, bool]:
    """Piped stdin like the CLI reads it: empty if nothing within 0.5 s, capped at 8 MiB."""
    stream = sys.stdin
    if stream is None:
        return "", False
    try:
        if stream.isatty():
            return "", False
        fd = stream.fileno()
        ready, _, _ = select.select([fd], [], [], _STDIN_FIRST_BYTE_WAIT)
    except (OSError, ValueError, AttributeError):
        return "", False
    if not ready:
        return "", False
    chunks: list[bytes] = []
    total = 0
    truncated = False
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        if total + len(chunk) > _STDIN_CAP:
            chunks.append(chunk[: _STDIN_CAP - total])
            truncated = True
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace"), truncated


def _err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


def _device_box(url: str) -> str:
    """The box the CLI writes to stderr when it falls into the device flow."""
    width = 70
    inner = width - 4
    title = f" {QWEN_DEVICE_AUTH_TITLE} "
    dashes = width - 2 - len(title)
    top = "+" + "-" * (dashes // 2) + title + "-" * (dashes - dashes // 2) + "+"
    empty = "|" + " " * (width - 2) + "|"

    def row(text: str) -> str:
        return f"| {text.ljust(inner)} |"

    url_rows = [row(url[i:i + inner]) for i in range(0, len(url), inner)]
    lines = [
        "", top, empty,
        row("Please visit the following URL in your browser to authorize:"), empty,
        *url_rows, empty, row(QWEN_DEVICE_AUTH_WAITING_TEXT), empty,
        "+" + "-" * (width - 2) + "+", "", "",
    ]
    return "\n".join(lines)


def _qwen_device_flow(backend: SimBackend, cred_path: Path) -> bool:
    """Print the box and poll like the headless CLI; True once a login was approved."""
    code = os.urandom(4).hex().upper()
    url = f"https://chat.qwen.ai/authorize?user_code={code[:4]}-{code[4:]}&client=qwen-code"
    _err(_device_box(url))
    settings = backend._settings()
    interval = float(settings.get("poll_interval", 2.0))
    deadline = time.monotonic() + float(settings.get("device_auth_timeout", 300.0))
    while True:
        cred = backend._claim_login()
        if cred is not None:
            # a first login writes through the path: a symlink there is followed
            cred_path.parent.mkdir(parents=True, exist_ok=True)
            with open(cred_path, "w", encoding="utf-8") as f:
                f.write(json.dumps(cred, indent=2))
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def _answer(d: _Decision, prompt: str, tool: str) -> str:
    account = d.account or "?"
    if d.answer_template is None:
        return f"Simulated {tool} answer from {account} (call {d.served})."
    return (d.answer_template.replace("{account}", account)
            .replace("{prompt_len}", str(len(prompt)))
            .replace("{call}", str(d.served)).replace("{n}", str(d.n)))


def _qwen_emit(d: _Decision, opts: dict[str, Any], prompt: str, started: float) -> int:
    fmt = opts["output_format"]
    ok = d.outcome in ("ok", "garbage")
    garbage = b"\xff\xfe\xc3(\x80 " if d.outcome == "garbage" else b""
    if fmt == "text":
        if ok:
            sys.stdout.flush()
            sys.stdout.buffer.write(garbage + _answer(d, prompt, "qwen").encode("utf-8"))
            sys.stdout.buffer.flush()
            return 0
        _err(QWEN_ERROR_OUTPUT[d.outcome])
        return 1
    # json modes: API errors end with exit 0 and the message in `result` (FACTS)
    result = _answer(d, prompt, "qwen") if ok else _QWEN_JSON_ERROR_RESULT[d.outcome]
    messages = _qwen_json_messages(d, opts, prompt, result, ok, started)
    if fmt == "json":  # 0.12.0: ONE JSON array of every message, on one line
        out = _js_json(messages) + "\n"
    else:  # stream-json: one object per line
        out = "".join(_js_json(m) + "\n" for m in messages)
    sys.stdout.flush()
    sys.stdout.buffer.write(garbage + out.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()
    return 0


def _js_json(value: object) -> str:
    """``JSON.stringify(value)``: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_QWEN_JSON_TOOLS = ["task", "skill", "list_directory", "read_file", "grep_search", "glob",
                    "save_memory", "todo_write", "ask_user_question", "exit_plan_mode",
                    "web_fetch", "web_search"]


def _qwen_json_messages(d: _Decision, opts: dict[str, Any], prompt: str, result: str,
                        ok: bool, started: float) -> list[dict[str, Any]]:
    """``[system init, assistant, result]`` with the fields and key order of 0.12.0."""
    session = str(uuid.uuid4())
    turn = str(uuid.uuid4())
    model = opts.get("model") or "coder-model"
    tokens_in = len(prompt) // 4 + 1 if ok else 0  # a failed request counts no tokens
    tokens_out = len(result) // 4 + 1 if ok else 0
    system = {
        "type": "system", "subtype": "init", "uuid": session, "session_id": session,
        "cwd": os.getcwd(), "tools": list(_QWEN_JSON_TOOLS), "mcp_servers": [],
        "model": model, "permission_mode": opts.get("approval_mode") or "default",
        "slash_commands": ["bug", "compress", "init", "summary"],
        "qwen_code_version": QWEN_VERSION, "agents": ["general-purpose"],
    }
    assistant = {
        "type": "assistant", "uuid": turn, "session_id": session, "parent_tool_use_id": None,
        "message": {"id": turn, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": result}], "stop_reason": None,
                    "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}},
    }
    api_ms = int(d.latency * 1000)
    final: dict[str, Any] = {
        "type": "result", "subtype": "success", "uuid": str(uuid.uuid4()),
        "session_id": session, "is_error": False,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "duration_api_ms": api_ms, "num_turns": 1, "result": result,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                  "cache_read_input_tokens": 0},
        "permission_denials": [],
    }
    if opts["output_format"] == "json":  # only the array's result carries stats
        final["stats"] = {
            "models": {model: {
                "api": {"totalRequests": 1, "totalErrors": 0 if ok else 1,
                        "totalLatencyMs": api_ms},
                "tokens": {"prompt": tokens_in, "candidates": tokens_out,
                           "total": tokens_in + tokens_out, "cached": 0, "thoughts": 0,
                           "tool": 0}}},
            "tools": {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0,
                      "totalDurationMs": 0,
                      "totalDecisions": {"accept": 0, "reject": 0, "modify": 0,
                                         "auto_accept": 0},
                      "byName": {}},
            "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
        }
    return [system, assistant, final]


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def _qwen_interactive(backend: SimBackend, cred_path: Path, args: list[str],
                      extra: dict[str, Any]) -> int:
    """No prompt and a terminal: the interactive session, which is how a person logs in.

    Without a valid credential it runs the device flow first (like ``--auth-type
    qwen-oauth``), then waits for the user until ``/quit``, end of input or a signal.
    """
    if _SPECS["qwen"].read(cred_path) is None:
        backend._log_only({"tool": "qwen", "account": None, "argv": args,
                           "outcome": "device_auth", "refreshed": False, **extra})
        if not _qwen_device_flow(backend, cred_path):
            _err(QWEN_DEVICE_AUTH_TIMEOUT_TEXT + "\n")
            return _EXIT_AUTH
    sys.stdout.write("Simulated qwen interactive session: logged in. Type /quit to leave.\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if line.strip() in ("/quit", "/exit"):
                break
    except KeyboardInterrupt:
        return 130
    return 0


def _qwen_main(args: list[str]) -> int:
    started = time.monotonic()
    usage: str | None = None
    opts: dict[str, Any] = {"output_format": "text", "positional": []}
    try:
        opts = _parse_qwen_args(args)
    except _UsageError as exc:
        usage = str(exc)
    if usage is None and opts.get("version"):
        sys.stdout.write(QWEN_VERSION + "\n")
        return 0
    if usage is None and opts.get("help"):
        sys.stdout.write(_QWEN_HELP)
        return 0
    backend = _env_backend()
    if backend is None:
        return 2
    spec = _SPECS["qwen"]
    home = spec.home()
    extra = {"home": str(home), "output_format": opts["output_format"],
             "model": opts.get("model")}
    if usage is not None:
        backend._log_only({"tool": "qwen", "account": None, "argv": args,
                           "outcome": "usage_error", "refreshed": False, **extra})
        _err(f"{_QWEN_HELP}\n{usage}\n")
        return _EXIT_INPUT
    stdin_text, truncated = _read_stdin()
    if truncated:
        _err(f"Warning: stdin input truncated to {_STDIN_CAP} bytes.\n")
    prompt = opts.get("prompt") or " ".join(opts["positional"])
    if stdin_text:
        prompt = f"{stdin_text}{_STDIN_JOINER}{prompt}" if prompt else stdin_text
    cred_path = home / spec.cred_file
    if not prompt and _stdin_is_terminal():
        return _qwen_interactive(backend, cred_path, args, extra)
    if not prompt:
        backend._log_only({"tool": "qwen", "account": None, "argv": args,
                           "outcome": "usage_error", "refreshed": False, **extra}, prompt)
        _err(QWEN_NO_INPUT_TEXT + "\n")
        return _EXIT_INPUT
    while True:
        d = backend._serve(spec, args, prompt, cred_path, extra)
        if d.outcome in ("device_auth", "refresh_fail"):
            if not _qwen_device_flow(backend, cred_path):
                _err(QWEN_DEVICE_AUTH_TIMEOUT_TEXT + "\n")
                return _EXIT_AUTH
            continue  # logged in: the CLI goes on with the prompt
        break
    _finish(spec, d)
    try:
        return _qwen_emit(d, opts, prompt, started)
    except BrokenPipeError:
        return 1


# --- Claude Code, Codex and Gemini CLI ------------------------------------------------------
#
# The same backend and account modes as qwen, served by the same code; what differs is data
# in ``_Spec``: the home and its variable, the credential's shape, how a refresh is written
# (qwen and Claude: temp file + rename, so a symlink is replaced; Codex and Gemini: in
# place, so a symlink is followed), whether the refresh token rotates, and the texts and
# exit codes from FACTS.md.
# A ``disabled`` account prints a plain 403 (these CLIs have no entitlement text in
# FACTS.md): it classifies as an error. Reset times come from the account's ``resets_in``
# (seconds, default five hours); ``limit_text`` replaces the whole limit message
# (``{epoch}`` is the reset time in epoch seconds).

CLAUDE_VERSION = "2.0.0-sim (Claude Code)"
CLAUDE_LIMIT_TEXT = "You've hit your limit · resets {when} ({zone})"
CLAUDE_EPOCH_LIMIT_TEXT = "Claude AI usage limit reached|{epoch}"
CLAUDE_RATE_LIMIT_TEXT = (
    'API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":'
    '"This request would exceed your account\'s rate limit. Please try again later."}}'
)
CLAUDE_AUTH_TEXT = (
    'API Error: 401 {"type":"error","error":{"type":"authentication_error","message":'
    '"OAuth token has expired. Please obtain a new token or refresh your existing token."}}'
)
CLAUDE_REFRESH_FAIL_TEXT = (
    "Failed to authenticate: OAuth session expired and could not be refreshed"
)
CLAUDE_NO_CREDENTIAL_TEXT = "Invalid API key · Please run /login"
CLAUDE_CONNECTION_TEXT = "API Error: Connection error."
CLAUDE_NO_INPUT_TEXT = (
    "Error: Input must be provided either through stdin or as a prompt argument when "
    "using --print"
)

CODEX_VERSION = "codex-cli 0.50.0-sim"
CODEX_LIMIT_TEXT = (
    "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/codex/settings/usage to purchase more credits or try again at "
    "{when}."
)
CODEX_RATE_LIMIT_TEXT = "exceeded retry limit, last status: 429 Too Many Requests"
CODEX_AUTH_TEXT = (
    "Your access token could not be refreshed because your refresh token was already "
    "used. Please log out and sign in again."
)
CODEX_REFRESH_FAIL_TEXT = (
    "Your access token could not be refreshed because your refresh token has expired. "
    "Please log out and sign in again."
)
CODEX_NO_CREDENTIAL_TEXT = "Not logged in. Run `codex login` first."
CODEX_CONNECTION_TEXT = (
    "stream disconnected before completion: error sending request for url "
    "(https://chatgpt.com/backend-api/codex/responses)"
)
CODEX_NOT_GIT_TEXT = (
    "Not inside a trusted directory and --skip-git-repo-check was not specified."
)
CODEX_NO_INPUT_TEXT = "No prompt provided via stdin."

GEMINI_VERSION = "0.20.0-sim"
GEMINI_LIMIT_TEXT = (
    "[API Error: You have exhausted your capacity on this model. Your quota will reset "
    "after {when}.]"
)
GEMINI_RATE_LIMIT_TEXT = "[API Error: 429 Too Many Requests]\nPlease wait and try again later."
GEMINI_AUTH_TEXT = "[API Error: 401 Request had invalid authentication credentials.]"
GEMINI_CONTINUE_PROMPT = "Do you want to continue? [Y/n]: "
GEMINI_LOGIN_FAILED_TEXT = "Failed to login. Message: invalid_grant"
GEMINI_CONNECTION_TEXT = "[API Error: fetch failed]"
GEMINI_NO_INPUT_TEXT = (
    "No input provided via stdin. Input can be provided by piping data into gemini or "
    "using the --prompt option."
)

_DEFAULT_RESETS_IN = 5 * 3600.0
_EXIT_USAGE_CLAP = 2
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                "Nov", "Dec")


def _clock(t: time.struct_time, *, compact: bool) -> str:
    hour = t.tm_hour % 12 or 12
    if compact:  # Claude: "1pm", "2:50am"
        ampm = "am" if t.tm_hour < 12 else "pm"
        return f"{hour}{ampm}" if t.tm_min == 0 else f"{hour}:{t.tm_min:02d}{ampm}"
    return f"{hour}:{t.tm_min:02d} {'AM' if t.tm_hour < 12 else 'PM'}"  # Codex: %-I:%M %p


def _day_suffix(day: int) -> str:
    if 11 <= day <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _claude_limit(resets_at: float) -> str:
    at = time.gmtime(-(-int(resets_at) // 60) * 60)  # the CLI shows whole minutes
    now = time.gmtime()
    when = _clock(at, compact=True)
    if (at.tm_year, at.tm_yday) != (now.tm_year, now.tm_yday):
        when = f"{_MONTH_NAMES[at.tm_mon - 1]} {at.tm_mday} at {when}"
    return CLAUDE_LIMIT_TEXT.format(when=when, zone="UTC")


def _codex_limit(resets_at: float) -> str:
    # chrono's Local: the zone of this process (TZ), like the real CLI
    at = time.localtime(resets_at)
    now = time.localtime()
    when = _clock(at, compact=False)
    if (at.tm_year, at.tm_yday) != (now.tm_year, now.tm_yday):
        when = (f"{_MONTH_NAMES[at.tm_mon - 1]} {at.tm_mday}{_day_suffix(at.tm_mday)}, "
                f"{at.tm_year} {when}")
    return CODEX_LIMIT_TEXT.format(when=when)


def _gemini_limit(resets_at: float) -> str:
    left = max(0, int(resets_at - time.time()))
    hours, rest = divmod(left, 3600)
    minutes, seconds = divmod(rest, 60)
    when = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return GEMINI_LIMIT_TEXT.format(when=f"{when}{seconds}s")


def _iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}000Z"


def _iso_to_ms(text: str) -> int | None:
    from datetime import datetime  # only Codex credentials need it

    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, TypeError):
        return None


def _str_fields(holder: object, *keys: str) -> tuple[str, ...] | None:
    if not isinstance(holder, dict):
        return None
    values: list[str] = []
    for key in keys:
        value = holder.get(key)
        if not isinstance(value, str):
            return None
        values.append(value)
    return tuple(values)


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return int(value)


# credential shapes: (account state, name, previous file or None) -> file content, and
# (file content) -> (access token, refresh token, expiry in ms) or None when unusable


def _qwen_credential(acc: dict[str, Any], name: str,
                     old: dict[str, Any] | None) -> dict[str, object]:
    if old is None:  # key order of a first login (device flow), as the CLI writes it
        return {
            "access_token": acc["access_token"],
            "refresh_token": acc["refresh_token"],
            "token_type": "Bearer",
            "resource_url": _QWEN_RESOURCE_URL,
            "expiry_date": acc["expiry_date"],
        }
    return {  # a refresh: the CLI's key order; unknown keys are dropped
        "access_token": acc["access_token"],
        "token_type": "Bearer",
        "refresh_token": old["refresh_token"],  # kept: the server sends none
        "resource_url": _QWEN_RESOURCE_URL,
        "expiry_date": acc["expiry_date"],
    }


def _qwen_tokens(cred: object) -> tuple[str, str, float] | None:
    fields = _str_fields(cred, "access_token", "refresh_token", "token_type")
    expiry = cred.get("expiry_date") if isinstance(cred, dict) else None
    if fields is None or isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return None
    return fields[0], fields[1], expiry  # as the file has it (a float stays one)


def _claude_credential(acc: dict[str, Any], name: str,
                       old: dict[str, Any] | None) -> dict[str, object]:
    prev = old.get("claudeAiOauth") if isinstance(old, dict) else None
    prev = prev if isinstance(prev, dict) else {}
    return {"claudeAiOauth": {
        "accessToken": acc["access_token"],
        "refreshToken": acc["refresh_token"],
        "expiresAt": acc["expiry_date"],
        "scopes": prev.get("scopes", ["user:inference", "user:profile"]),
        "subscriptionType": prev.get("subscriptionType", "pro"),
    }}


def _claude_tokens(cred: object) -> tuple[str, str, int] | None:
    oauth = cred.get("claudeAiOauth") if isinstance(cred, dict) else None
    pair = _str_fields(oauth, "accessToken", "refreshToken")
    expiry = _number(oauth.get("expiresAt")) if isinstance(oauth, dict) else None
    if pair is None or expiry is None:
        return None
    return pair[0], pair[1], expiry


def _codex_credential(acc: dict[str, Any], name: str,
                      old: dict[str, Any] | None) -> dict[str, object]:
    return {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": f"idt.{acc['access_token']}",
            "access_token": acc["access_token"],
            "refresh_token": acc["refresh_token"],
            "account_id": hashlib.sha256(name.encode()).hexdigest()[:32],
        },
        # the simulated server's tokens live an hour: last_refresh is an hour before expiry
        "last_refresh": _iso_ms(int(acc["expiry_date"]) - _TOKEN_LIFETIME_MS),
    }


def _codex_tokens(cred: object) -> tuple[str, str, int] | None:
    tokens = cred.get("tokens") if isinstance(cred, dict) else None
    pair = _str_fields(tokens, "access_token", "refresh_token")
    last = cred.get("last_refresh") if isinstance(cred, dict) else None
    refreshed = _iso_to_ms(last) if isinstance(last, str) else None
    if pair is None or refreshed is None:
        return None
    return pair[0], pair[1], refreshed + _TOKEN_LIFETIME_MS


def _gemini_credential(acc: dict[str, Any], name: str,
                       old: dict[str, Any] | None) -> dict[str, object]:
    return {
        "access_token": acc["access_token"],
        "refresh_token": acc["refresh_token"],
        "scope": "https://www.googleapis.com/auth/cloud-platform openid",
        "token_type": "Bearer",
        "id_token": f"idt.{acc['access_token']}",
        "expiry_date": acc["expiry_date"],
    }


def _gemini_tokens(cred: object) -> tuple[str, str, int] | None:
    pair = _str_fields(cred, "access_token", "refresh_token")
    expiry = _number(cred.get("expiry_date")) if isinstance(cred, dict) else None
    if pair is None or expiry is None:
        return None
    return pair[0], pair[1], expiry


def _write_in_place(path: Path, text: str) -> None:
    """Truncate and write through the path (a symlink there is followed), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class _Spec:
    """What one simulated tool does differently; :class:`SimBackend` serves them all.

    ``missing_outcome``: what a call without a usable credential records.
    ``refresh_fail_deletes``: a failed refresh deletes the credential file (qwen).
    ``refresh_on_401``: a 401 costs one forced refresh before the call gives up (qwen).
    """

    def __init__(self, name: str, home_env: str, home_dir: str, cred_file: str, *,
                 env_is_parent: bool, renames: bool, rotates_refresh: bool,
                 credential: Callable[[dict[str, Any], str, dict[str, Any] | None],
                                      dict[str, object]],
                 tokens: Callable[[object], tuple[str, str, float] | None],
                 missing_outcome: str = "no_credential", refresh_fail_deletes: bool = False,
                 refresh_on_401: bool = False) -> None:
        self.name = name
        self.home_env = home_env
        self.home_dir = home_dir
        self.cred_file = cred_file
        self.env_is_parent = env_is_parent
        self.renames = renames
        self.rotates_refresh = rotates_refresh
        self.credential = credential
        self.tokens = tokens
        self.missing_outcome = missing_outcome
        self.refresh_fail_deletes = refresh_fail_deletes
        self.refresh_on_401 = refresh_on_401

    def home(self) -> Path:
        value = os.environ.get(self.home_env)
        if value:
            return Path(value) / self.home_dir if self.env_is_parent else Path(value)
        return Path(os.path.expanduser("~")) / self.home_dir

    def read(self, path: Path) -> tuple[dict[str, Any], tuple[str, str, float]] | None:
        """The credential file and its tokens, or None (missing or malformed)."""
        cred = _read_json(path)
        toks = self.tokens(cred) if cred is not None else None
        return None if cred is None or toks is None else (cred, toks)

    def write(self, path: Path, cred: dict[str, object]) -> None:
        text = json.dumps(cred, indent=2)
        if self.renames:
            _atomic_write(path, text)  # temp + rename: a symlink is replaced
        else:
            _write_in_place(path, text)


_SPECS: dict[str, _Spec] = {
    "qwen": _Spec("qwen", "QWEN_HOME", ".qwen", _QWEN_CRED_FILE,
                  env_is_parent=False, renames=True, rotates_refresh=False,
                  credential=_qwen_credential, tokens=_qwen_tokens,
                  missing_outcome="device_auth", refresh_fail_deletes=True,
                  refresh_on_401=True),
    "claude": _Spec("claude", "CLAUDE_CONFIG_DIR", ".claude", ".credentials.json",
                    env_is_parent=False, renames=True, rotates_refresh=True,
                    credential=_claude_credential, tokens=_claude_tokens),
    "codex": _Spec("codex", "CODEX_HOME", ".codex", "auth.json",
                   env_is_parent=False, renames=False, rotates_refresh=True,
                   credential=_codex_credential, tokens=_codex_tokens),
    # GEMINI_CLI_HOME holds .gemini (it replaces the user's home for the CLI)
    "gemini": _Spec("gemini", "GEMINI_CLI_HOME", ".gemini", "oauth_creds.json",
                    env_is_parent=True, renames=False, rotates_refresh=False,
                    credential=_gemini_credential, tokens=_gemini_tokens),
}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _flags(args: list[str], values: dict[str, str], bools: dict[str, str],
           choices: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A small getopt: ``--opt V``, ``--opt=V``, boolean flags and positionals."""
    opts: dict[str, Any] = {"positional": []}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts["positional"].extend(args[i:])
            break
        if arg == "-" or not arg.startswith("-"):
            opts["positional"].append(arg)
            continue
        flag, eq, inline = arg.partition("=")
        if flag in values:
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise _UsageError(f"option '{flag}' needs a value")
            key = values[flag]
            allowed = choices.get(key)
            if allowed is not None and value not in allowed:
                raise _UsageError(
                    f"invalid value '{value}' for '{flag}' (choose from {', '.join(allowed)})")
            opts[key] = value
        elif flag in bools and not eq:
            opts[bools[flag]] = True
        else:
            raise _UsageError(f"unexpected argument '{flag}' found")
    return opts


def _other_error(spec: _Spec, d: _Decision) -> tuple[str, int]:
    """(message, exit code) of a failed call, as the tool prints it."""
    tool = spec.name
    if d.outcome == "quota":
        if d.limit_text:
            return d.limit_text.replace("{epoch}", str(int(d.resets_at))), 1
        limit = {"claude": _claude_limit, "codex": _codex_limit, "gemini": _gemini_limit}
        return limit[tool](d.resets_at), 1
    texts = {
        "claude": {"rate_limit": CLAUDE_RATE_LIMIT_TEXT, "auth": CLAUDE_AUTH_TEXT,
                   "refresh_fail": CLAUDE_REFRESH_FAIL_TEXT,
                   "no_credential": CLAUDE_NO_CREDENTIAL_TEXT,
                   "connection_error": CLAUDE_CONNECTION_TEXT},
        "codex": {"rate_limit": CODEX_RATE_LIMIT_TEXT, "auth": CODEX_AUTH_TEXT,
                  "refresh_fail": CODEX_REFRESH_FAIL_TEXT,
                  "no_credential": CODEX_NO_CREDENTIAL_TEXT,
                  "connection_error": CODEX_CONNECTION_TEXT},
        "gemini": {"rate_limit": GEMINI_RATE_LIMIT_TEXT, "auth": GEMINI_AUTH_TEXT,
                   "refresh_fail": GEMINI_LOGIN_FAILED_TEXT,
                   "no_credential": GEMINI_LOGIN_FAILED_TEXT,
                   "connection_error": GEMINI_CONNECTION_TEXT},
    }[tool]
    text = texts.get(d.outcome, f"API Error: 403 this {tool} account has no access")
    auth_exit = tool == "gemini" and d.outcome in ("refresh_fail", "no_credential")
    return text, _EXIT_AUTH if auth_exit else 1


def _finish(spec: _Spec, d: _Decision) -> None:
    if d.outcome == "hang":
        sys.stdout.flush()
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    if d.outcome == "refresh_fail" and spec.name == "gemini":
        # expired OAuth: the CLI asks on stdin, and waits for a person
        _err(GEMINI_CONTINUE_PROMPT)
        settings = SimBackend(Path(os.environ[BACKEND_ENV]))._settings()
        time.sleep(float(settings.get("device_auth_timeout", 300.0)))
    if d.latency > 0:
        time.sleep(d.latency)


def _other_prepare(spec: _Spec, args: list[str], prompt: str,
                   extra: dict[str, Any]) -> tuple[SimBackend, _Decision] | int:
    backend = _env_backend()
    if backend is None:
        return 2
    home = spec.home()
    extra = {"home": str(home), **extra}
    d = backend._serve(spec, args, prompt, home / spec.cred_file, extra)
    _finish(spec, d)
    return backend, d


def _env_backend() -> SimBackend | None:
    root = os.environ.get(BACKEND_ENV)
    if not root:
        _err(f"credrot.simulate: {BACKEND_ENV} is not set (path of a SimBackend directory)\n")
        return None
    return SimBackend(Path(root))


def _log_usage(spec: _Spec, args: list[str], extra: dict[str, Any]) -> None:
    root = os.environ.get(BACKEND_ENV)
    if root:
        SimBackend(Path(root))._log_only(
            {"tool": spec.name, "account": None, "argv": args, "outcome": "usage_error",
             "refreshed": False, "home": str(spec.home()), **extra})


def _write_out(text: str, garbage: bool = False) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write((b"\xff\xfe\xc3(\x80 " if garbage else b"") + text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _claude_main(args: list[str]) -> int:
    spec = _SPECS["claude"]
    try:
        opts = _flags(
            args,
            {"--output-format": "output_format", "--model": "model",
             "--permission-mode": "permission_mode", "--max-turns": "max_turns"},
            {"-p": "print", "--print": "print", "--verbose": "verbose",
             "-v": "version", "--version": "version"},
            {"output_format": ("text", "json", "stream-json"),
             "permission_mode": ("acceptEdits", "bypassPermissions", "default", "plan")},
        )
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"error: {exc}\n")
        return 1
    if opts.get("version"):
        sys.stdout.write(CLAUDE_VERSION + "\n")
        return 0
    fmt = opts.get("output_format", "text")
    extra = {"output_format": fmt, "model": opts.get("model")}
    stdin_text, _ = _read_stdin()
    prompt = " ".join(opts["positional"])
    if stdin_text:
        prompt = f"{stdin_text}\n{prompt}" if prompt else stdin_text
    if not opts.get("print") or not prompt:
        _log_usage(spec, args, extra)
        _err(CLAUDE_NO_INPUT_TEXT + "\n")
        return 1
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    _, d = prepared
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "claude"), 0) if ok else _other_error(spec, d)
    if fmt == "text":
        # -p prints the result, an error included, on stdout
        _write_out(text + "\n", d.outcome == "garbage")
        return code
    result = {"type": "result", "subtype": "success" if ok else "error_during_execution",
              "is_error": not ok, "duration_ms": int(d.latency * 1000), "num_turns": 1,
              "result": text, "session_id": str(uuid.uuid4()), "total_cost_usd": 0}
    lines = [result]
    if fmt == "stream-json":
        lines = [{"type": "system", "subtype": "init", "session_id": result["session_id"],
                  "model": opts.get("model") or "claude-sonnet-sim"}, result]
    _write_out("".join(json.dumps(line) + "\n" for line in lines), d.outcome == "garbage")
    return code


def _in_git_repo() -> bool:
    here = Path.cwd()
    return any((p / ".git").exists() for p in (here, *here.parents))


def _codex_main(args: list[str]) -> int:
    spec = _SPECS["codex"]
    if args[:1] in (["--version"], ["-V"]):
        sys.stdout.write(CODEX_VERSION + "\n")
        return 0
    if not args or args[0] not in ("exec", "e"):
        _log_usage(spec, args, {})
        _err("credrot.simulate: only `codex exec` is simulated\n")
        return _EXIT_USAGE_CLAP
    try:
        opts = _flags(
            args[1:],
            {"-m": "model", "--model": "model", "-s": "sandbox", "--sandbox": "sandbox",
             "--color": "color", "-C": "cd", "--cd": "cd"},
            {"--json": "json", "--skip-git-repo-check": "skip_git",
             "--full-auto": "full_auto"},
            {"sandbox": ("read-only", "workspace-write", "danger-full-access"),
             "color": ("always", "never", "auto")},
        )
        if len(opts["positional"]) > 1:
            raise _UsageError(f"unexpected argument '{opts['positional'][1]}' found")
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"error: {exc}\n")
        return _EXIT_USAGE_CLAP
    extra = {"output_format": "json" if opts.get("json") else "text",
             "model": opts.get("model")}
    if not opts.get("skip_git") and not _in_git_repo():
        _log_usage(spec, args, extra)
        _err(CODEX_NOT_GIT_TEXT + "\n")
        return 1
    prompt = opts["positional"][0] if opts["positional"] else "-"
    if prompt == "-":  # `-` or no prompt: read it all from stdin
        prompt, _ = _read_stdin()
        if not prompt.strip():
            _log_usage(spec, args, extra)
            _err(CODEX_NO_INPUT_TEXT + "\n")
            return 1
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    _, d = prepared
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "codex"), 0) if ok else _other_error(spec, d)
    if not opts.get("json"):
        if ok:  # progress goes to stderr, the last message to stdout
            _err("codex\n")
            _write_out(text + "\n", d.outcome == "garbage")
        else:
            _err(f"ERROR: {text}\n")
        return code
    events: list[dict[str, Any]] = [{"type": "thread.started", "thread_id": str(uuid.uuid4())},
                                    {"type": "turn.started"}]
    if ok:
        events += [{"type": "item.completed",
                    "item": {"id": "item_0", "type": "agent_message", "text": text}},
                   {"type": "turn.completed", "usage": {"input_tokens": len(prompt) // 4 + 1}}]
    else:
        events += [{"type": "error", "message": text},
                   {"type": "turn.failed", "error": {"message": text}}]
    _write_out("".join(json.dumps(e) + "\n" for e in events), d.outcome == "garbage")
    return code


def _gemini_main(args: list[str]) -> int:
    spec = _SPECS["gemini"]
    try:
        opts = _flags(
            args,
            {"-p": "prompt", "--prompt": "prompt", "-o": "output_format",
             "--output-format": "output_format", "-m": "model", "--model": "model",
             "--approval-mode": "approval_mode"},
            {"-y": "yolo", "--yolo": "yolo", "-v": "version", "--version": "version"},
            {"output_format": ("text", "json", "stream-json"),
             "approval_mode": ("default", "auto_edit", "yolo", "plan")},
        )
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"{exc}\n")
        return _EXIT_INPUT
    if opts.get("version"):
        sys.stdout.write(GEMINI_VERSION + "\n")
        return 0
    fmt = opts.get("output_format", "text")
    extra = {"output_format": fmt, "model": opts.get("model")}
    stdin_text, _ = _read_stdin()
    prompt = opts.get("prompt") or " ".join(opts["positional"])
    if stdin_text:  # the -p text is appended to stdin
        prompt = f"{stdin_text}{_STDIN_JOINER}{prompt}" if prompt else stdin_text
    if not prompt:
        _log_usage(spec, args, extra)
        _err(GEMINI_NO_INPUT_TEXT + "\n")
        return _EXIT_INPUT
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    _, d = prepared
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "gemini"), 0) if ok else _other_error(spec, d)
    if fmt == "text":
        if ok:
            _write_out(text + "\n", d.outcome == "garbage")
        else:
            _err(text + "\n")
        return code
    body: dict[str, Any] = (
        {"response": text, "stats": {"models": {}}} if ok
        else {"error": {"type": "Error", "message": text, "code": code}}
    )
    _write_out(json.dumps(body, indent=2) + "\n", d.outcome == "garbage")
    return code


# --- the tool table -----------------------------------------------------------------------

class ToolSim:
    """How one tool is simulated: its home variable and directory, credential and entry."""

    def __init__(self, name: str, home_env: str, home_dir: str, credential_file: str,
                 run: Callable[[list[str]], int]) -> None:
        self.name = name
        self.home_env = home_env
        self.home_dir = home_dir
        self.credential_file = credential_file
        self.run = run

    def __repr__(self) -> str:
        return f"ToolSim({self.name!r})"


_RUNS: dict[str, Callable[[list[str]], int]] = {
    "qwen": _qwen_main, "claude": _claude_main, "codex": _codex_main, "gemini": _gemini_main,
}
TOOLS: dict[str, ToolSim] = {
    name: ToolSim(name, spec.home_env, spec.home_dir, spec.cred_file, _RUNS[name])
    for name, spec in _SPECS.items()
}


def main(argv: list[str] | None = None) -> int:
    """``python -m credrot.simulate TOOL [ARGS...]``: run one simulated invocation."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in TOOLS:
        _err(f"usage: python -m credrot.simulate {{{','.join(TOOLS)}}} [ARGS...]\n")
        return 2
    return TOOLS[args[0]].run(args[1:])


_SHIM = """\
#!{python} -S
# Simulated `{tool}` written by credrot.simulate.install(): for tests and the demo only.
import marshal
import os
import sys

os.environ.setdefault("CREDROT_SIM_BACKEND", {backend!r})
_src = {module!r}
_cache = {cache!r}
_st = os.stat(_src)
_key = ("%d:%d:%s" % (_st.st_mtime_ns, _st.st_size, sys.version)).encode()
_code = None
try:
    with open(_cache, "rb") as _f:
        _head, _, _blob = _f.read().partition(b"\\n")
    if _head == _key:
        _code = marshal.loads(_blob)
except (OSError, ValueError, EOFError, TypeError):
    pass
if _code is None:
    with open(_src, "rb") as _f:
        _code = compile(_f.read(), _src, "exec")
    try:
        _tmp = "%s.%d" % (_cache, os.getpid())
        with open(_tmp, "wb") as _f:
            _f.write(_key + b"\\n" + marshal.dumps(_code))
        os.replace(_tmp, _cache)
    except OSError:
        pass
_mod = type(sys)("credrot.simulate")
_mod.__file__ = _src
sys.modules["credrot.simulate"] = _mod
exec(_code, _mod.__dict__)
sys.exit(_mod.main([{tool!r}, *sys.argv[1:]]))
"""


def install(bin_dir: Path, backend: Path, tools: Sequence[str] = ("qwen",)) -> dict[str, Path]:
    """Write an executable per tool into ``bin_dir`` (put it first on PATH).

    The shim runs this very file without ``site`` or package imports, from a code
    cache kept in ``bin_dir`` (the source tree stays free of bytecode and
    PYTHONDONTWRITEBYTECODE does not matter), so a call starts in about 30 ms.
    """
    bin_dir = Path(bin_dir).resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    backend_root = Path(backend).resolve()
    SimBackend(backend_root)
    written: dict[str, Path] = {}
    for tool in tools:
        if tool not in TOOLS:
            raise ValueError(f"no simulator for {tool!r}; known: {', '.join(TOOLS)}")
        path = bin_dir / tool
        path.write_text(
            _SHIM.format(
                python=sys.executable, tool=tool, backend=str(backend_root),
                module=str(Path(__file__).resolve()),
                cache=str(bin_dir / ".credrot-simulate.code"),
            ),
            encoding="utf-8",
        )
        path.chmod(0o755)
        written[tool] = path
    return written


if __name__ == "__main__":
    sys.exit(main())
