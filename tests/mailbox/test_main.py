"""``python -m timkit.mailbox``: SMTP and HTTP in one process, stopped cleanly by SIGTERM."""

from __future__ import annotations

import smtplib
from pathlib import Path

import httpx

from tests.mailbox.conftest import mail, mailbox_process


def test_process_receives_mail_and_stops_on_sigterm(tmp_path: Path) -> None:
    with mailbox_process(tmp_path) as box:
        with smtplib.SMTP("127.0.0.1", box.smtp_port, timeout=10) as smtp:
            smtp.send_message(mail("praxis@kim.tim.test", "Hallo", "Text"))
        answer = httpx.get(box.url + "/api/messages", params={"to": "praxis@kim.tim.test"})
        [message] = answer.json()
        assert message["subject"] == "Hallo"
    assert box.process.returncode == 0, box.stderr
    assert "mail 1 from" in box.stderr
