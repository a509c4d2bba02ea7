"""``python -m timkit.fhirproxy``: without the directory's token it does not start."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.fhirproxy.__main__ import main


def test_the_fhir_proxy_refuses_to_start_without_the_directory_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fhir-proxy.toml"
    config.write_text(
        f'port = 0\ndatabase = "sqlite:///{tmp_path}/p.db"\npki_dir = "{tmp_path}/pki"\n'
        f'upstream_token_file = "{tmp_path}/absent"\n'
    )
    assert main(["--config", str(config)]) == 2
    assert "upstream_token_file" in capsys.readouterr().err
