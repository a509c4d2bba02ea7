"""AF_10057: the optional check that only supported TI-M clients log in."""

from __future__ import annotations

import hashlib

import pytest
from multidict import CIMultiDict

from timkit.core.errors import TimkitError
from timkit.core.request_target import parse_target
from timkit.proxy.inbound.client_check import ClientCheck, is_login_path

SECRET = "s3cr3t-of-the-praxis-client"
CHECK = ClientCheck([("praxis-client", hashlib.sha256(SECRET.encode()).hexdigest())])


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/login",
        "/_matrix/client/r0/login",
        "/_matrix/client/api/v1/login",
        "/_matrix/client/unstable/login",
        "/_matrix/client/unstable/org.matrix.msc3882/login/get_token",
        "/_matrix/client/v1/login/get_token",
        "/_matrix/client/v3/login/sso/redirect",
        "/_matrix/client/v3/log%69n",
        "/_matrix/client/v3/login/",
        "/_matrix/client/v4/login",
        "/_matrix/client/v3/register",
        "/_matrix/client/r0/register/available",
    ],
)
def test_af_10057_every_spelling_of_login_and_register_is_checked(path: str) -> None:
    assert is_login_path(parse_target(path).segments)


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/versions",
        "/_matrix/client/v3/rooms/login/state",
        "/_matrix/client/v3/logout",
        "/_matrix/client/v3/account/whoami",
        "/_matrix/federation/v1/login",
        "/login",
    ],
)
def test_other_paths_are_not_login_paths(path: str) -> None:
    assert not is_login_path(parse_target(path).segments)


def test_af_10057_a_supported_client_passes() -> None:
    CHECK.check(CIMultiDict({"X-TIM-Client-ID": "praxis-client", "X-TIM-Client-Secret": SECRET}))


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("X-TIM-Client-ID", "praxis-client")],
        [("X-TIM-Client-ID", "praxis-client"), ("X-TIM-Client-Secret", "wrong")],
        [("X-TIM-Client-ID", "other-client"), ("X-TIM-Client-Secret", SECRET)],
        [
            ("X-TIM-Client-ID", "praxis-client"),
            ("X-TIM-Client-Secret", "wrong"),
            ("X-TIM-Client-Secret", SECRET),
        ],
        [
            ("X-TIM-Client-ID", "other-client"),
            ("X-TIM-Client-ID", "praxis-client"),
            ("X-TIM-Client-Secret", SECRET),
        ],
    ],
    ids=["none", "no-secret", "wrong-secret", "unknown-id", "secret-twice", "id-twice"],
)
def test_af_10057_an_unsupported_client_gets_401(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(TimkitError) as refused:
        CHECK.check(CIMultiDict(headers))
    assert (refused.value.status, refused.value.errcode) == (401, "M_UNAUTHORIZED")
    assert "AF_10057" in (refused.value.requirement or "")


def test_no_registered_client_means_the_check_is_off() -> None:
    assert not ClientCheck([]).active
    assert CHECK.active
