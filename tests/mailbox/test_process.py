"""``python -m timkit.mailbox``: SMTP and HTTP in one process, stopped cleanly by SIGTERM."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import httpx
import tomli_w

from tests.mailbox.conftest import mail
from tests.support.wait import wait_until
from timkit.core.process import free_port


def test_process_receives_mail_and_stops_on_sigterm(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "mailbox.toml"
    config.write_text(tomli_w.dumps({"smtp_port": smtp_port, "http_port": http_port}))
    process = subprocess.Popen(
        [sys.executable, "-m", "timkit.mailbox", "--config", str(config)],
        stdout=subprocess.PIPE,
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
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.send_message(mail("praxis@kim.tim.test", "Hallo", "Text"))
        [message] = httpx.get(url + "/api/messages", params={"to": "praxis@kim.tim.test"}).json()
        assert message["subject"] == "Hallo"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "mail 1 from" in stderr
