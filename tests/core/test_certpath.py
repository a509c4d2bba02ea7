"""Certificate path rules for ``x5c`` signers (``timkit.core.certpath``), one test per rule.

The forgeries of issue 14 run through ``verify_list`` in ``tests/core/test_federation_list.py``;
these are the rules no forgery there reaches.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.forged_lists import Issued, issue
from timkit.core.certpath import (
    MAX_CHAIN,
    OID_FD_SIG,
    OID_VZD_TI,
    PathError,
    admission_roles,
    policy_oids,
    validate_path,
)
from timkit.core.tls import FEDERATION_LIST_SIGNER

NOW = dt.datetime.now(dt.UTC)


def _root(path_length: int | None = None) -> Issued:
    return issue("Root", None, ca=True, path_length=path_length)


def test_a_valid_path_is_returned_signer_first_ending_with_the_anchor() -> None:
    root = _root(path_length=1)
    sub = issue("Sub", root, ca=True, path_length=0)
    signer = issue("Signer", sub)
    path = validate_path([signer.cert, sub.cert], [root.cert], NOW)
    assert path == [signer.cert, sub.cert, root.cert]


def test_no_anchors_and_no_chain_fail() -> None:
    root = _root()
    signer = issue("Signer", root)
    with pytest.raises(PathError, match="no trust anchors"):
        validate_path([signer.cert], [], NOW)
    with pytest.raises(PathError, match="empty"):
        validate_path([], [root.cert], NOW)


def test_a_signer_not_valid_yet_fails() -> None:
    root = _root()
    signer = issue("Signer", root, not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(PathError, match="CN=Signer is not valid yet"):
        validate_path([signer.cert], [root.cert], NOW)


def test_an_expired_anchor_fails() -> None:
    root = issue(
        "Root",
        None,
        ca=True,
        not_before=NOW - dt.timedelta(days=9),
        not_after=NOW - dt.timedelta(days=1),
    )
    signer = issue("Signer", root)
    with pytest.raises(PathError, match="CN=Root expired"):
        validate_path([signer.cert], [root.cert], NOW)


def test_an_anchor_that_is_no_ca_fails() -> None:
    not_ca = issue("Leaf anchor", None)
    signer = issue("Signer", not_ca)
    with pytest.raises(PathError, match="CN=Leaf anchor issued another but is not a CA"):
        validate_path([signer.cert], [not_ca.cert], NOW)


def test_an_unprocessed_critical_extension_fails() -> None:
    root = _root()
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    signer = issue("Signer", root, extra=[(unknown, True)])
    with pytest.raises(PathError, match=r"unprocessed critical extension 1\.2\.3\.4\.5"):
        validate_path([signer.cert], [root.cert], NOW)
    # the same extension marked non-critical is ignored
    signer = issue("Signer", root, extra=[(unknown, False)])
    validate_path([signer.cert], [root.cert], NOW)


def test_a_chain_longer_than_allowed_fails() -> None:
    root = _root()
    chain = [issue("Signer", root).cert] * (MAX_CHAIN + 1)
    with pytest.raises(PathError, match=f"at most {MAX_CHAIN}"):
        validate_path(chain, [root.cert], NOW)


def test_path_length_counts_every_ca_below_the_issuer() -> None:
    root = _root(path_length=1)
    sub1 = issue("Sub1", root, ca=True)
    sub2 = issue("Sub2", sub1, ca=True)
    signer = issue("Signer", sub2)
    with pytest.raises(PathError, match="CN=Root allows 1 CA certificates below it"):
        validate_path([signer.cert, sub2.cert, sub1.cert], [root.cert], NOW)
    sub1 = issue("Sub1", _root(path_length=None), ca=True, path_length=0)
    sub2 = issue("Sub2", sub1, ca=True)
    signer = issue("Signer", sub2)
    with pytest.raises(PathError, match="CN=Sub1 allows 0 CA certificates below it"):
        validate_path([signer.cert, sub2.cert], [sub1.cert], NOW)


def test_a_key_on_another_curve_fails() -> None:
    root = _root()
    signer = issue("Signer", root, key=ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(PathError, match="CN=Signer has a key that is not EC"):
        validate_path([signer.cert], [root.cert], NOW)


def test_a_certificate_not_issued_by_the_next_fails() -> None:
    root = _root()
    other = _root()
    signer = issue("Signer", root)
    with pytest.raises(PathError, match="CN=Signer is not issued by CN=Root"):
        validate_path([signer.cert, other.cert], [other.cert], NOW)


def test_roles_and_policies_are_read_from_admission_and_certificate_policies() -> None:
    signer = issue("Signer", _root(), role=FEDERATION_LIST_SIGNER)
    assert admission_roles(signer.cert) == {OID_VZD_TI}
    assert OID_FD_SIG in policy_oids(signer.cert)
    plain = issue("Plain", _root())
    assert admission_roles(plain.cert) == frozenset()
    assert policy_oids(plain.cert) == frozenset()
