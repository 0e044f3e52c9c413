"""Reading secrets (BMC passwords) from a file, the environment or the config file itself.

Privacy rule for a file holding a secret (a password file, or a config file with an inline
`password:`): it must belong to root or to the user stonewall runs as, must not be writable
by anyone else, and must not be readable by others. Its group may read it only when that
group is root (gid 0): on Debian only root is in that group, and configuration tools commonly
install such files 0640 root:root. Anything looser is refused, never silently accepted.
No message here ever contains a secret's value.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from stonewall.config.errors import ConfigProblem
from stonewall.config.model import ClusterConfig, Secret

_MAX_SECRET_BYTES = 64 * 1024  # a password file larger than this is a wrong path, not a password


class SecretError(Exception):
    """A secret could not be used."""


class SecretUnavailable(SecretError):
    """The secret's source is missing, unreadable or empty."""


class SecretExposed(SecretError):
    """The file holding a secret can be read or changed by others (see the module rule)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}; refusing to use the secret in it "
                         f"(chown root and chmod 600 {path})")
        self.path = path
        self.reason = reason


def exposure(status: os.stat_result) -> str | None:
    """Why a file with this status is not private enough to hold a secret, or None if it is."""
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid not in (0, os.geteuid()):
        return f"owned by uid {status.st_uid}, not root or uid {os.geteuid()}"
    allowed = 0o040 if status.st_gid == 0 else 0
    if mode & 0o077 & ~allowed:
        who = "others" if mode & 0o007 else f"group gid {status.st_gid}"
        return f"mode {mode:04o} gives {who} access"
    return None


def read_secret(secret: Secret, environ: Mapping[str, str]) -> str:
    """The secret's value; SecretUnavailable or SecretExposed when it cannot be used safely."""
    if secret.file:
        return _read_secret_file(secret.file)
    if secret.env:
        value = environ.get(secret.env)
        if not value:
            raise SecretUnavailable(f"environment variable {secret.env} is "
                                    + ("empty" if value == "" else "not set"))
        return value
    if secret.inline:
        return secret.inline  # the loader refused it unless the config file is private
    raise SecretUnavailable("no password source is configured")


def password_file_problems(config: ClusterConfig) -> list[ConfigProblem]:
    """A problem for every node whose IPMI password file cannot be used (read, then dropped).

    Environment variables are not checked: the service that uses them has its own environment.
    """
    problems = []
    for i, node in enumerate(config.nodes):
        if node.ipmi is not None and node.ipmi.password.file:
            key = f"nodes[{i}].ipmi.password_file"
            try:
                _read_secret_file(node.ipmi.password.file)
            except SecretError as err:
                problems.append(ConfigProblem(config.source, config.key_lines.get(key), key,
                                              str(err)))
    return problems


def _read_secret_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            # Judge the file we opened, not the path again: no window for a swap in between.
            reason = exposure(os.fstat(handle.fileno()))
            if reason:
                raise SecretExposed(path, reason)
            data = handle.read(_MAX_SECRET_BYTES + 1)
    except OSError as err:
        raise SecretUnavailable(f"secret file {path} cannot be read: {err.strerror}") from None
    if len(data) > _MAX_SECRET_BYTES:
        raise SecretUnavailable(f"secret file {path} is larger than {_MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretUnavailable(f"secret file {path} is not UTF-8 text") from None
    # Editors end files with a newline that is not part of the password.
    value = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not value:
        raise SecretUnavailable(f"secret file {path} is empty")
    return value
