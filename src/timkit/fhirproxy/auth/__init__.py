"""Who is calling: access tokens, the IDP client, RegService-OpenID-Tokens, Matrix OpenID
checks and the authentication endpoints' rate limiter."""
