"""What ``qwen-review`` never sends: files whose name, place or content says they likely
hold a secret."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable

#: Names (matched case-insensitively against the file's base name) never sent to a tool.
SECRET_NAMES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.tfstate",
    "*.tfstate.backup",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "oauth_creds*.json",
    ".credentials.json",
    "credentials.json",
    "client_secret*.json",
    "service-account*.json",
    "auth.json",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "secrets.y*ml",
    "secrets.json",
)
#: Paths (matched against the end of the file's path) never sent to a tool.
SECRET_PATHS = (
    ".ssh/*",
    ".gnupg/*",
    ".aws/credentials",
    ".aws/config",
    ".docker/config.json",
    ".kube/config",
    ".qwen/*",
    ".claude/*",
    ".codex/*",
    ".gemini/*",
)

#: Content that makes a file "likely secret" whatever its name; the label names the kind.
#: Each pattern starts with a literal so a search over a large diff stays fast.
_SECRET_CONTENT = (
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("an AWS access key id", re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Z])")),
    ("a GitHub token", re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{60}")),
    ("a Slack token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10}")),
    ("a Google API key", re.compile(r"AIza[0-9A-Za-z_\-]{35}")),
    ("an API secret key", re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{32}")),
    (
        "an OAuth token",
        re.compile(
            r"(?:refresh|access)_?[tT]oken[\"']?\s*[:=]\s*[\"'][A-Za-z0-9._~+/=\-]{16,}[\"']"
        ),
    ),
)


# ------------------------------------------------------------------- secrets
def _glob(pattern: str) -> Callable[[str], bool]:
    """``fnmatch.fnmatchcase`` for one pattern; the usual shapes (``name``, ``*.ext``,
    ``prefix*``, ``pre*suf``) without a regular expression, the rest through fnmatch."""
    if "?" in pattern or "[" in pattern or pattern.count("*") > 1:
        return lambda name: fnmatch.fnmatchcase(name, pattern)
    if "*" not in pattern:
        return pattern.__eq__
    head, tail = pattern.split("*")
    least = len(head) + len(tail)
    return lambda name: len(name) >= least and name.startswith(head) and name.endswith(tail)


@functools.cache
def _matchers() -> tuple[list[Callable[[str], bool]], dict[int, list[Callable[[str], bool]]]]:
    """:data:`SECRET_NAMES`, and :data:`SECRET_PATHS` by how many path parts each spans."""
    by_depth: dict[int, list[Callable[[str], bool]]] = {}
    for pattern in SECRET_PATHS:
        by_depth.setdefault(pattern.count("/") + 1, []).append(_glob(pattern))
    return [_glob(pattern) for pattern in SECRET_NAMES], by_depth


def secret_name(path: str) -> bool:
    """True when the file's name or location says it likely holds a secret (glob rules,
    as ``fnmatch.fnmatchcase`` reads them)."""
    names, paths = _matchers()
    norm = path.replace("\\", "/").lower()
    base = norm.rsplit("/", 1)[-1]
    if any(match(base) for match in names):
        return True
    parts = norm.split("/")
    for depth, matchers in paths.items():
        for start in range(len(parts) - depth + 1):
            window = "/".join(parts[start : start + depth])
            if any(match(window) for match in matchers):
                return True
    return False


def secret_content(text: str) -> str | None:
    """What kind of secret ``text`` seems to hold (never the secret itself), else None."""
    for label, pattern in _SECRET_CONTENT:
        if pattern.search(text):
            return label
    return None
