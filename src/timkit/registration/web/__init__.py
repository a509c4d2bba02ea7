"""The RD's web frontend: server-rendered Jinja2 pages, German by default, English on request."""
