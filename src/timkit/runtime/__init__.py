"""The local runtime: one machine, a whole federation, no network, no root, no Docker.

``timkit.runtime`` is the composition layer above the components: it reads the one TOML
file, derives every component's own config file, and hands the processes to the supervisor.
It is the only package besides the CLI that knows more than one component.
"""
