"""The local run's mail server: SMTP in, a mailbox page and a JSON API out.

Services of the local run (the Registrierungs-Dienst's KIM confirmation mails) send real SMTP
to it; people read the mail at ``/``, tests and the bootstrap through ``/api/messages``.
Production configures a real relay instead and never runs this.

``smtp`` (aiosmtpd handler) and ``api`` (HTTP) → ``messages`` (parsing, in-memory store).
"""
