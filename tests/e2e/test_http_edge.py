"""The shared HTTP edge (``timkit.core.web``) in a real component process: a 405 names the
allowed methods in ``Allow`` and is rendered in the component's own format."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import tomli_w

from tests.support.wait import wait_until
from timkit.core.process import free_port


def test_405_from_a_component_process_carries_allow(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "mailbox.toml"
    config.write_text(tomli_w.dumps({"smtp_port": smtp_port, "http_port": http_port}))
    process = subprocess.Popen(
        [sys.executable, "-m", "timkit.mailbox", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(url + "/health").status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                return False

        wait_until(healthy, "the mailbox's /health")
        answer = httpx.post(url + "/api/messages", content=b"{}")
        spelled = httpx.request("PATCH", url + "/api/%6Dessages")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    for wrong in (answer, spelled):
        assert wrong.status_code == 405
        assert set(wrong.headers["Allow"].split(",")) == {"DELETE", "GET", "HEAD"}
        assert wrong.json()["errcode"] == "M_UNRECOGNIZED"  # as on every Matrix JSON edge
        assert wrong.json()["error"].endswith("Method Not Allowed")
    assert "Traceback" not in stderr
