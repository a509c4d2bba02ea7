"""Cross-signing, secret storage and server-side key backup for the TI-M client (ADR 0007).

matrix-nio lacks these; this package adds them on ``cryptography`` and vodozemac, to the
letter of the Matrix spec (v1.3+ "End-to-end encryption"). The facade is
:mod:`timkit.client.keys.recovery`.
"""

from timkit.client.keys.recovery import (
    BackupStatus,
    RestoreResult,
    backup_status,
    recover,
    setup_recovery,
    upload_new_sessions,
)

__all__ = [
    "BackupStatus",
    "RestoreResult",
    "backup_status",
    "recover",
    "setup_recovery",
    "upload_new_sessions",
]
