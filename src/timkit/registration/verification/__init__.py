"""AF_10103: verifying an organisation by its SMC-B (OIDC, Verfahren 1) or by KIM (Verfahren 2)."""
