"""Password hashing (argon2id, argon2-cffi defaults = RFC 9106 low-memory profile) and policy.

Policy (BSI IT-Grundschutz ORP.4.A8 in spirit, NIST SP 800-63B in detail): at least
``accounts.password_min_length`` characters (default 12) and at most 256; not containing the
username; not one repeated character; not on a short list of notorious passwords. No
composition rules beyond that: length is what counts, and the second factor carries the rest.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from timkit.core.errors import Codes, TimkitError

MAX_LENGTH = 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("timkit: no such account")
_NOTORIOUS = frozenset(
    {
        "passwort1234",
        "password1234",
        "123456789012",
        "qwertzuiop12",
        "qwertyuiop12",
        "hallo1234567",
        "geheim123456",
        "abcdefghijkl",
    }
)


def check_username(username: str) -> str:
    """``username`` if well-formed (3-64 of ``a-z0-9._-``, starting alphanumeric).

    Raises:
        TimkitError: 400 ``M_INVALID_USERNAME``.
    """
    if not USERNAME.match(username):
        raise TimkitError(
            400,
            Codes.INVALID_USERNAME,
            "username: 3-64 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        )
    return username


def check_policy(password: str, username: str, min_length: int) -> None:
    """Refuse a password that breaks the policy (module docstring).

    Raises:
        TimkitError: 400 ``M_WEAK_PASSWORD`` naming the broken rule.
    """
    problem = ""
    if len(password) < min_length:
        problem = f"password must have at least {min_length} characters"
    elif len(password) > MAX_LENGTH:
        problem = f"password must have at most {MAX_LENGTH} characters"
    elif username and username.lower() in password.lower():
        problem = "password must not contain the username"
    elif len(set(password)) < 4:
        problem = "password must not consist of so few different characters"
    elif password.lower() in _NOTORIOUS:
        problem = "password is too common"
    if problem:
        raise TimkitError(400, Codes.WEAK_PASSWORD, problem, requirement="ML-129853")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (blocking, ~50 ms: call it in a thread)."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with None a dummy hash is checked (same cost)."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
