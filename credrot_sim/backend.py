"""The simulated server side: accounts, quotas and token families in a directory every
simulator process shares.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from credrot_sim.base import (
    _ACCOUNT_FIELDS,
    _DEFAULT_RESETS_IN,
    _REFRESH_BUFFER_MS,
    _TOKEN_LIFETIME_MS,
    _atomic_write,
    _check_mode,
    _new_token,
    _now_ms,
)
from credrot_sim.creds import _SPECS, _Spec
from credrot_sim.families import REUSED, RefreshGuard, check_refresh, refused, spend

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any


class SimStore:
    """The backend's files: ``backend.json`` under an exclusive ``flock`` on
    ``backend.lock`` for each read-modify-write, so parallel simulator processes keep
    exact counts. ``backend.json`` holds tokens (it plays the server): keep it out of
    anything shown."""

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


class SimBackend(SimStore):
    """The simulated server side: accounts, issued tokens, quotas and a call log."""

    @staticmethod
    def _issue(
        state: dict[str, Any], name: str, access: str | None = None, refresh: str | None = None
    ) -> None:
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
        retry_after: float = 0.0,
    ) -> dict[str, object]:
        """Register an account and return its credential in ``tool``'s format (qwen's
        ``oauth_creds.json`` by default). ``resets_in``/``limit_text``: see the Claude,
        Codex and Gemini section below. ``retry_after``: a ``rate_limit`` account of
        codex that the CLI waits out itself (``Reconnecting... n/5``, then that long)."""
        _check_mode(mode)
        if tool not in _SPECS:
            raise ValueError(f"no simulator for {tool!r}; known: {', '.join(_SPECS)}")
        with self._transaction() as state:
            if name in state["accounts"]:
                raise ValueError(f"simulated account {name!r} already exists")
            for tok in (access_token, refresh_token):
                if tok is not None and (
                    tok in state["access_tokens"] or tok in state["refresh_tokens"]
                ):
                    raise ValueError(f"token already issued (account {name!r})")
            state["accounts"][name] = {
                "quota": quota,
                "mode": mode,
                "refresh_every": refresh_every,
                "answer": answer,
                "latency": latency,
                "retry_after": retry_after,
                "used": 0,
                "calls": 0,
                "refreshes": 0,
                "logins": 1,
                "expiry_date": 0,
                "resets_in": resets_in,
                "limit_text": limit_text,
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

    def _serve(
        self, spec: _Spec, argv: list[str], prompt: str, cred_path: Path, extra: dict[str, Any]
    ) -> _Decision:
        """Decide one call of ``spec``'s tool against the shared state; apply file effects."""
        with RefreshGuard(spec, cred_path), self._transaction() as state:
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
                {
                    "tool": spec.name,
                    "account": d.account,
                    "argv": argv,
                    "outcome": d.outcome,
                    "refreshed": d.refreshed,
                    **extra,
                },
                prompt,
            )
            return d

    def _account_call(
        self,
        state: dict[str, Any],
        d: _Decision,
        spec: _Spec,
        cred: dict[str, Any],
        toks: tuple[str, str, float],
        cred_path: Path,
    ) -> None:
        access, refresh, expiry = toks
        name = state["access_tokens"].get(access)
        forced = False
        if name is None:  # the API answers 401; the CLI tries one refresh
            name = state["refresh_tokens"].get(refresh)
            if name is None:  # a spent, revoked or unknown refresh token
                d.account, d.outcome = refused(state, spec, refresh)
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
        d.latency, d.gate = float(acc["latency"]), acc.get("gate")
        d.retry_after = float(acc.get("retry_after") or 0.0)
        if mode == "revoked":  # 401 from the API, and the refresh it tries is refused
            d.outcome = "revoked"
            return
        if due:
            if mode == "connection_error":  # the token endpoint is unreachable too
                d.outcome = "connection_error"
                return
            if mode == "refresh_fail":  # 400 invalid_grant
                d.outcome = "refresh_fail"
                if spec.refresh_fail_deletes:  # qwen deletes the file
                    cred_path.unlink(missing_ok=True)  # only the link when it is one
                return
            if not check_refresh(state, spec, name, refresh):
                d.outcome = REUSED  # refused, and every token of the account revoked
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
                # A refused request comes back at once: only an answer takes time.
                d.latency = min(d.latency, 0.02)
                resets_in = acc.get("resets_in")
                d.resets_at = time.time() + float(
                    _DEFAULT_RESETS_IN if resets_in is None else resets_in
                )
                d.limit_text = acc.get("limit_text")
            else:
                acc["used"] += 1
                d.outcome = "garbage" if mode == "garbage" else "ok"
                d.answer_template = acc["answer"]
                d.served = int(acc["used"])
        else:
            d.outcome = mode

    def _refresh(
        self,
        state: dict[str, Any],
        spec: _Spec,
        name: str,
        old_refresh: str,
        cred: dict[str, Any],
        cred_path: Path,
    ) -> None:
        """New access token (and refresh token where it rotates), written the tool's way."""
        if spec.rotates_refresh:
            self._issue(state, name, None, _new_token())
            spend(state, name, old_refresh)  # single-use: presenting it again revokes
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

    def __init__(self, backend: SimStore) -> None:
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
        self.gate: str | None = None  # a file to wait for before answering
        self.retry_after = 0.0  # codex: a rate limit the CLI waits out itself
