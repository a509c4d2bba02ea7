"""``python -m timkit.directory``: without its token the FHIR-Directory does not start."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.directory.__main__ import main


def test_the_directory_refuses_to_start_without_its_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "directory.toml"
    config.write_text(
        f'port = 0\ndatabase = "sqlite:///{tmp_path}/d.db"\ntoken_file = "{tmp_path}/absent"\n'
    )
    assert main(["--config", str(config)]) == 2
    assert "token_file" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("too-short\n")
    config.write_text(f'port = 0\ndatabase = "sqlite:///{tmp_path}/d.db"\ntoken_file = "{short}"\n')
    assert main(["--config", str(config)]) == 2
    assert "at least 32" in capsys.readouterr().err
