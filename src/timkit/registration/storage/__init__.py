"""The Registrierungs-Dienst's own state (numbered migrations, SQLite or PostgreSQL)."""
