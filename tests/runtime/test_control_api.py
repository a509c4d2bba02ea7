"""The supervisor's control API in-process: a real control API over a real data directory.

The supervisor behind it runs nothing (no process is ever started); what the API does with
real processes is ``tests/e2e/test_control_api.py``'s business.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from timkit.core.web import running_app
from timkit.runtime.backend import EmbeddedBackend
from timkit.runtime.config import TimkitConfig
from timkit.runtime.control_api import control_app
from timkit.runtime.layout import Layout
from timkit.runtime.supervisor import Supervisor

TOKEN = "control-token-for-the-edge-tests"


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """The control API of a supervisor that is not running (nothing is ever started); its
    base URL and the data directory."""
    config = TimkitConfig(data_dir=tmp_path)
    layout = Layout(tmp_path)
    supervisor = Supervisor([], layout.run / "state.json")
    app = control_app(EmbeddedBackend(config, supervisor), TOKEN)
    async with running_app(app, "127.0.0.1", 0) as runner:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", tmp_path


async def test_unknown_path_is_404_m_unrecognized_json_after_the_token(
    edge: tuple[str, Path],
) -> None:
    base, _ = edge
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as http:
        for path in ("/nothing", "/services/a.tim.test/more", "/services/"):
            unknown = await http.get(base + path, headers=auth)
            assert unknown.status_code == 404
            assert unknown.headers["Content-Type"].startswith("application/json")
            assert unknown.json()["errcode"] == "M_UNRECOGNIZED"
        anonymous = await http.get(base + "/nothing")
        assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")
        absent = await http.get(base + "/services/nowhere.tim.test", headers=auth)
        assert (absent.status_code, absent.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_wrong_method_is_405_m_unrecognized_with_allow(edge: tuple[str, Path]) -> None:
    base, _ = edge
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as http:
        post = await http.post(base + "/services", headers=auth, json={})
        assert post.status_code == 405
        assert post.json()["errcode"] == "M_UNRECOGNIZED"
        assert set(post.headers["Allow"].split(",")) == {"GET", "HEAD"}
        patch = await http.patch(base + "/services/a.tim.test", headers=auth)
        assert patch.status_code == 405
        assert set(patch.headers["Allow"].split(",")) == {"GET", "HEAD", "PUT", "DELETE"}


async def test_a_crash_is_a_json_500_without_its_cause(edge: tuple[str, Path]) -> None:
    base, data = edge
    domain = "kaputt.tim.test"
    certs = Layout(data).pki / "certs"
    certs.mkdir(parents=True)
    for suffix in (".crt", ".key"):  # a damaged certificate: loading it raises ValueError
        (certs / f"{domain}{suffix}").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    async with httpx.AsyncClient() as http:
        crash = await http.put(
            f"{base}/services/{domain}",
            json={"organisation": "Kaputt"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert crash.status_code == 500
    assert crash.headers["Content-Type"].startswith("application/json")
    assert crash.json() == {"errcode": "M_UNKNOWN", "error": "internal error in the control API"}
