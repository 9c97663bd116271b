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
- In ``json``/``stream-json`` every API error exits 0 with the text in ``result``.
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
    "To keep coding today, upgrade to a paid plan on Alibaba Cloud Model Studio "
    "(https://modelstudio.console.alibabacloud.com) and switch to it with /auth, "
    "or come back when your daily allowance is renewed."
)
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

_QWEN_STACK = (
    "Error: Free allocated quota exceeded.\n"
    "    at QwenContentGenerator.handleError (file:///usr/lib/node_modules/@qwen-code/"
    "qwen-code/cli.js:312044:19)\n"
    "    at async QwenContentGenerator.generateContentStream (file:///usr/lib/node_modules/"
    "@qwen-code/qwen-code/cli.js:311902:13)\n"
    "    at async runNonInteractive (file:///usr/lib/node_modules/@qwen-code/qwen-code/"
    "cli.js:402311:30)\n"
    "    at async main (file:///usr/lib/node_modules/@qwen-code/qwen-code/cli.js:410877:5)\n"
)
_QWEN_QUOTA_BLOCK = f"{QWEN_QUOTA_TEXT}\n{QWEN_QUOTA_UPSELL_TEXT}\n\n"

#: Full stderr of a text-mode call per outcome, as the simulator prints it.
QWEN_ERROR_OUTPUT: dict[str, str] = {
    "quota": _QWEN_QUOTA_BLOCK * 3 + f"{QWEN_CRITICAL_ERROR_TEXT}\n{_QWEN_STACK}",
    "rate_limit": f"{QWEN_RATE_LIMIT_TEXT}\n{QWEN_RATE_LIMIT_HINT_TEXT}\n",
    "auth": f"{QWEN_AUTH_401_TEXT}\n",
    "disabled": f"{QWEN_DISCONTINUED_TEXT}\n",
    "connection_error": f"{QWEN_CONNECTION_TEXT}\n",
}

# What ends up in the json ``result`` when the CLI turns an API error into exit 0.
_QWEN_JSON_ERROR_RESULT: dict[str, str] = {
    "quota": f"{QWEN_QUOTA_TEXT}\n{QWEN_QUOTA_UPSELL_TEXT}",
    "rate_limit": f"{QWEN_RATE_LIMIT_TEXT}\n{QWEN_RATE_LIMIT_HINT_TEXT}",
    "auth": QWEN_AUTH_401_TEXT,
    "disabled": QWEN_DISCONTINUED_TEXT,
    "connection_error": QWEN_CONNECTION_TEXT,
}

#: Account behaviours a test can choose (see :meth:`SimBackend.add_account`).
MODES = frozenset(
    {"ok", "quota", "rate_limit", "auth", "disabled", "connection_error", "hang",
     "refresh_fail", "garbage"}
)

_QWEN_CRED_FILE = "oauth_creds.json"
_QWEN_RESOURCE_URL = "portal.qwen.ai"
_TOKEN_LIFETIME_MS = 3_600_000
_QWEN_REFRESH_BUFFER_MS = 30_000  # the CLI refreshes a token this close to expiry
_STDIN_CAP = 8 * 1024 * 1024
_STDIN_FIRST_BYTE_WAIT = 0.5  # the CLI treats stdin as empty if nothing came by then
_STDIN_JOINER = "\n\n"  # the CLI builds `${stdin}\n\n${prompt}`
_EXIT_INPUT = 42
_EXIT_AUTH = 41
_ACCOUNT_FIELDS = ("quota", "mode", "refresh_every", "answer", "latency")


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

    @staticmethod
    def _login_credential(acc: dict[str, Any]) -> dict[str, object]:
        # key order of a first login (device flow), as the CLI writes it
        return {
            "access_token": acc["access_token"],
            "refresh_token": acc["refresh_token"],
            "token_type": "Bearer",
            "resource_url": _QWEN_RESOURCE_URL,
            "expiry_date": acc["expiry_date"],
        }

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
    ) -> dict[str, object]:
        """Register an account and return its qwen credential (what ``oauth_creds.json`` holds)."""
        _check_mode(mode)
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
                "expiry_date": 0,
            }
            self._issue(state, name, access_token, refresh_token or _new_token())
            acc = state["accounts"][name]
            if expired:
                acc["expiry_date"] = _now_ms() - _TOKEN_LIFETIME_MS
            return self._login_credential(acc)

    def credential(self, name: str) -> dict[str, object]:
        """The account's newest credential, as a fresh login would write it."""
        return self._login_credential(self._account(self._snapshot(), name))

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
            return self._login_credential(acc)

    def _settings(self) -> dict[str, float]:
        settings: dict[str, float] = self._snapshot()["settings"]
        return settings

    def _serve_qwen(self, argv: list[str], prompt: str, cred_path: Path,
                    extra: dict[str, Any]) -> _Decision:
        """Decide one qwen call against the shared state and apply its file effects."""
        with self._transaction() as state:
            d = _Decision()
            cred = _read_qwen_credential(cred_path)
            if cred is None:
                d.outcome = "device_auth"
            else:
                self._qwen_account_call(state, d, cred, cred_path)
            if d.outcome == "hang":
                import subprocess  # only this path needs it; keeps start-up short

                child = subprocess.Popen(  # same process group: a caller must kill it too
                    [sys.executable, "-S", "-c", "import time; time.sleep(600)"],
                    stdin=subprocess.DEVNULL,
                )
                extra = {**extra, "child_pid": child.pid}
            d.n = self._record(
                state,
                {"tool": "qwen", "account": d.account, "argv": argv, "outcome": d.outcome,
                 "refreshed": d.refreshed, **extra},
                prompt,
            )
            return d

    def _qwen_account_call(self, state: dict[str, Any], d: _Decision,
                           cred: dict[str, Any], cred_path: Path) -> None:
        name = state["access_tokens"].get(cred["access_token"])
        forced = False
        if name is None:  # the API answers 401; the CLI tries one refresh
            name = state["refresh_tokens"].get(cred["refresh_token"])
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
            or cred["expiry_date"] - _QWEN_REFRESH_BUFFER_MS < _now_ms()
            or (every > 0 and acc["calls"] % every == 0)
        )
        if due:
            if mode == "connection_error":  # the token endpoint is unreachable too
                d.outcome = "connection_error"
                d.latency = float(acc["latency"])
                return
            if mode == "refresh_fail":  # 400 invalid_grant: the CLI deletes the file
                d.outcome = "refresh_fail"
                cred_path.unlink(missing_ok=True)  # only the link when it is one
                return
            self._qwen_refresh(state, name, cred, cred_path)
            d.refreshed = True
        d.latency = float(acc["latency"])
        if mode == "auth":
            if not d.refreshed:  # a 401 costs one forced refresh before giving up
                self._qwen_refresh(state, name, cred, cred_path)
                d.refreshed = True
            d.outcome = "auth"
        elif mode in ("ok", "garbage", "refresh_fail"):
            quota = acc["quota"]
            if quota is not None and acc["used"] >= quota:
                d.outcome = "quota"
            else:
                acc["used"] += 1
                d.outcome = "garbage" if mode == "garbage" else "ok"
                d.answer_template = acc["answer"]
                d.served = int(acc["used"])
        else:
            d.outcome = mode

    def _qwen_refresh(self, state: dict[str, Any], name: str, cred: dict[str, Any],
                      cred_path: Path) -> None:
        """Refresh as the CLI does: new access token, temp file, rename over the path."""
        self._issue(state, name)
        acc = state["accounts"][name]
        acc["refreshes"] += 1
        new = {  # the CLI's key order; unknown keys are dropped
            "access_token": acc["access_token"],
            "token_type": "Bearer",
            "refresh_token": cred["refresh_token"],  # kept: the server sends none
            "resource_url": _QWEN_RESOURCE_URL,
            "expiry_date": acc["expiry_date"],
        }
        tmp = cred_path.with_name(f"{cred_path.name}.tmp.{uuid.uuid4()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(new, indent=2))
        os.rename(tmp, cred_path)


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


def _check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{uuid.uuid4()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_qwen_credential(path: Path) -> dict[str, Any] | None:
    """The credential as the CLI accepts it, or None (missing or malformed)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(data.get(k), str)
               for k in ("access_token", "refresh_token", "token_type")):
        return None
    expiry = data.get("expiry_date")
    if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return None
    return data


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


def _qwen_home() -> Path:
    home = os.environ.get("QWEN_HOME")
    if home:
        return Path(home)
    return Path(os.path.expanduser("~")) / ".qwen"


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


def _answer(d: _Decision, prompt: str) -> str:
    account = d.account or "?"
    if d.answer_template is None:
        return f"Simulated qwen answer from {account} (call {d.served})."
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
            sys.stdout.buffer.write(garbage + _answer(d, prompt).encode("utf-8"))
            sys.stdout.buffer.flush()
            return 0
        _err(QWEN_ERROR_OUTPUT[d.outcome])
        return 1
    # json modes: API errors end with exit 0 and the message in `result` (FACTS)
    result = _answer(d, prompt) if ok else _QWEN_JSON_ERROR_RESULT[d.outcome]
    session = str(uuid.uuid4())
    model = opts.get("model") or "coder-model"
    final = {
        "type": "result", "subtype": "success", "uuid": str(uuid.uuid4()),
        "session_id": session, "is_error": False,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "duration_api_ms": int(d.latency * 1000), "num_turns": 1, "result": result,
        "usage": {"input_tokens": len(prompt) // 4 + 1, "output_tokens": len(result) // 4 + 1},
        "permission_denials": [],
    }
    lines = [final]
    if fmt == "stream-json":
        lines = [
            {"type": "system", "subtype": "init", "uuid": str(uuid.uuid4()),
             "session_id": session, "cwd": os.getcwd(), "tools": [], "model": model,
             "permission_mode": opts.get("approval_mode") or "default",
             "qwen_code_version": QWEN_VERSION},
            {"type": "assistant", "uuid": str(uuid.uuid4()), "session_id": session,
             "message": {"id": str(uuid.uuid4()), "type": "message", "role": "assistant",
                         "model": model, "content": [{"type": "text", "text": result}]}},
            final,
        ]
    out = "".join(json.dumps(line) + "\n" for line in lines)
    sys.stdout.flush()
    sys.stdout.buffer.write(garbage + out.encode("utf-8"))
    sys.stdout.buffer.flush()
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
    root = os.environ.get(BACKEND_ENV)
    if not root:
        _err(f"credrot.simulate: {BACKEND_ENV} is not set (path of a SimBackend directory)\n")
        return 2
    backend = SimBackend(Path(root))
    home = _qwen_home()
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
    if not prompt:
        backend._log_only({"tool": "qwen", "account": None, "argv": args,
                           "outcome": "usage_error", "refreshed": False, **extra}, prompt)
        _err(QWEN_NO_INPUT_TEXT + "\n")
        return _EXIT_INPUT
    cred_path = home / _QWEN_CRED_FILE
    while True:
        d = backend._serve_qwen(args, prompt, cred_path, extra)
        if d.outcome in ("device_auth", "refresh_fail"):
            if not _qwen_device_flow(backend, cred_path):
                _err(QWEN_DEVICE_AUTH_TIMEOUT_TEXT + "\n")
                return _EXIT_AUTH
            continue  # logged in: the CLI goes on with the prompt
        break
    if d.outcome == "hang":
        sys.stdout.flush()
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    if d.latency > 0:
        time.sleep(d.latency)
    try:
        return _qwen_emit(d, opts, prompt, started)
    except BrokenPipeError:
        return 1


# --- the tool table -----------------------------------------------------------------------

class ToolSim:
    """How one tool is simulated; claude/codex/gemini get an entry here later."""

    def __init__(self, name: str, home_env: str, home_dir: str, credential_file: str,
                 run: Callable[[list[str]], int]) -> None:
        self.name = name
        self.home_env = home_env
        self.home_dir = home_dir
        self.credential_file = credential_file
        self.run = run

    def __repr__(self) -> str:
        return f"ToolSim({self.name!r})"


TOOLS: dict[str, ToolSim] = {
    "qwen": ToolSim("qwen", "QWEN_HOME", ".qwen", _QWEN_CRED_FILE, _qwen_main),
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
