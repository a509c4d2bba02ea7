"""Org-Admin accounts (ML-129853): password, second factor (TOTP or WebAuthn), login, sessions."""
