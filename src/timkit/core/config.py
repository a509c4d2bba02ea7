"""Typed, frozen, strict configuration.

Every component describes its configuration as a tree of :class:`StrictModel` classes.
Unknown keys are errors, values are type-checked, and a failure names the key path::

    ConfigError: timkit.toml: messenger_services.0.port: Input should be a valid integer
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from timkit.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: immutable, unknown keys rejected, no silent coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_config(model: type[M], data: dict[str, Any], *, source: str = "") -> M:
    """Validate ``data`` against ``model``.

    Raises:
        ConfigError: naming the first offending key path and what is wrong with it.
    """
    try:
        # JSON mode: strict about numbers and booleans, yet paths and enums come from strings.
        return model.model_validate_json(json.dumps(data, default=str))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(message, path=_format_loc(first["loc"]), source=source) from None


def load_toml(model: type[M], path: Path | None) -> M:
    """Load a TOML file into ``model``; ``None`` yields the model's defaults.

    Raises:
        ConfigError: when the file is missing, is not valid TOML, or does not fit ``model``.
    """
    if path is None:
        return parse_config(model, {})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    return parse_config(model, data, source=str(path))


def dump_toml(config: BaseModel, path: Path) -> None:
    """Write ``config`` as TOML (``None`` values omitted) so :func:`load_toml` reads it back."""
    data = config.model_dump(mode="json", exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    tmp.replace(path)
