"""The shared HTTP edge (``timkit.core.web``) in a real component process: a 405 names the
allowed methods in ``Allow`` and is rendered in the component's own format."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.mailbox.conftest import mailbox_process


def test_405_from_a_component_process_carries_allow(tmp_path: Path) -> None:
    with mailbox_process(tmp_path) as box:
        answer = httpx.post(box.url + "/api/messages", content=b"{}")
        spelled = httpx.request("PATCH", box.url + "/api/%6Dessages")
    for wrong in (answer, spelled):
        assert wrong.status_code == 405
        assert set(wrong.headers["Allow"].split(",")) == {"DELETE", "GET", "HEAD"}
        assert wrong.json()["errcode"] == "M_UNRECOGNIZED"  # as on every Matrix JSON edge
        assert wrong.json()["error"].endswith("Method Not Allowed")
    assert "Traceback" not in box.stderr
