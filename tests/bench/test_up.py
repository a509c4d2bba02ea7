"""``timkit bench up``'s federation: a fresh data directory, listeners on free ports."""

from __future__ import annotations

from pathlib import Path

from timkit.bench.up import bench_config
from timkit.runtime.config import TimkitConfig


def _ports(config: TimkitConfig) -> list[int]:
    return [
        config.runtime.control_port,
        config.directory.port,
        config.directory.proxy_port,
        config.idp.port,
        config.mailbox.smtp_port,
        config.mailbox.http_port,
        config.registration.port,
        config.push.port,
        config.push.receiver_port,
        config.push.apns_port,
        *(s.port for s in config.messenger_services),
        *(s.forward_proxy_port for s in config.messenger_services),
    ]


def test_bench_config_keeps_off_the_configured_ports(tmp_path: Path) -> None:
    # the user's federation may be running: the bench takes free ports, never the defaults
    config = bench_config(tmp_path / "var", 3)

    assert config.data_dir == tmp_path / "var"
    defaults = TimkitConfig().messenger_services
    domains = [service.domain for service in config.messenger_services]
    assert domains[: len(defaults)] == [s.domain for s in defaults][: len(domains)]
    assert len(set(domains)) == 3
    assert set(_ports(config)).isdisjoint(_ports(TimkitConfig()))
    assert config.runtime.log_level == "WARNING"
