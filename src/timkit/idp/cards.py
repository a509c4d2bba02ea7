"""The virtual smartcards whose identities the IDP stand-in vouches for.

A card is what the gematik Authenticator would read from a real SMC-B (an institution) or HBA
(a health professional): the TelematikID, the profession OID and the holder's names. The cards
come from a YAML file (``cards_file``)::

    cards:
      - id: praxis-sonnenschein          # what the card-selection form posts
        type: SMC-B                      # SMC-B or HBA
        telematikID: 1-0944775149
        professionOID: 1.2.276.0.76.4.50 # an institution OID for SMC-B, a person OID for HBA
        organizationName: Praxis Dr. Sonnenschein   # required for SMC-B
        kim: praxis-sonnenschein@kim.tim.test       # optional KIM address
      - id: dr-sonnenschein
        type: HBA
        telematikID: 1-1-ARZT-SONNENSCHEIN01
        professionOID: 1.2.276.0.76.4.30
        given_name: Clara                # required for HBA, with family_name
        family_name: Sonnenschein

Validation is strict: unknown keys, wrong types, an OID of the wrong card type or a missing
name are errors naming the card and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from timkit.core import professions
from timkit.core.config import StrictModel
from timkit.core.errors import ConfigError
from timkit.core.professions import INSTITUTIONS, PERSONS

CardType = Literal["SMC-B", "HBA"]


class Card(StrictModel):
    """One virtual smartcard. Field names are the YAML keys (gematik's claim names).

    Attributes:
        id: stable handle of the card, posted by the card-selection form.
        type: ``SMC-B`` (institution) or ``HBA`` (health professional).
        telematikID: the TelematikID, issued as ``idNummer``.
        professionOID: gematik profession OID fitting ``type``.
        organizationName: the institution (required for SMC-B, optional for HBA).
        given_name: the holder's given name (HBA).
        family_name: the holder's family name (HBA).
        kim: KIM address of the holder, for relying parties of the local run that mail it.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    type: CardType
    telematikID: str = Field(pattern=r"^[0-9]+-[A-Za-z0-9.\-]{1,120}$")
    professionOID: str
    organizationName: str = Field(default="", max_length=256)
    given_name: str = Field(default="", max_length=128)
    family_name: str = Field(default="", max_length=128)
    kim: str = Field(default="", pattern=r"^$|^[^@\s]+@[^@\s]+$")

    @field_validator("professionOID")
    @classmethod
    def _profession_fits_type(cls, oid: str, info: Any) -> str:
        card_type = info.data.get("type")
        own, other = (INSTITUTIONS, PERSONS) if card_type == "SMC-B" else (PERSONS, INSTITUTIONS)
        if oid in own or card_type is None:
            return oid
        if oid in other:
            kind = "an institution (SMC-B)" if professions.is_institution(oid) else "a person (HBA)"
            raise ValueError(f"{oid} is {kind} profession OID, not one for an {card_type} card")
        raise ValueError(f"{oid} is not a gematik profession OID for an {card_type} card")

    @model_validator(mode="after")
    def _names(self) -> Card:
        if self.type == "SMC-B" and not self.organizationName.strip():
            raise ValueError("organizationName is required for an SMC-B card")
        if self.type == "HBA" and not (self.given_name.strip() and self.family_name.strip()):
            raise ValueError("given_name and family_name are required for an HBA card")
        return self

    @property
    def holder(self) -> str:
        """The holder's display name: the person for an HBA, the institution for an SMC-B."""
        if self.type == "HBA":
            return f"{self.given_name} {self.family_name}"
        return self.organizationName

    @property
    def profession(self) -> str:
        """The German name of the profession OID."""
        return professions.display(self.professionOID)


class CardsFile(StrictModel):
    """The cards file: a non-empty list of cards with unique ids."""

    cards: tuple[Card, ...] = Field(min_length=1)

    @field_validator("cards")
    @classmethod
    def _unique_ids(cls, cards: tuple[Card, ...]) -> tuple[Card, ...]:
        seen: set[str] = set()
        for card in cards:
            if card.id in seen:
                raise ValueError(f"card id {card.id!r} is used twice")
            seen.add(card.id)
        return cards


DEMO_CARDS: dict[str, Any] = {
    "cards": [
        {
            "id": "praxis-sonnenschein",
            "type": "SMC-B",
            "telematikID": "1-0944775149",
            "professionOID": "1.2.276.0.76.4.50",
            "organizationName": "Praxis Dr. Sonnenschein",
            "kim": "praxis-sonnenschein@kim.tim.test",
        },
        {
            "id": "klinikum-nord",
            "type": "SMC-B",
            "telematikID": "1-0833107194",
            "professionOID": "1.2.276.0.76.4.53",
            "organizationName": "Klinikum Nord",
            "kim": "klinikum-nord@kim.tim.test",
        },
        {
            "id": "dr-sonnenschein",
            "type": "HBA",
            "telematikID": "1-1-ARZT-SONNENSCHEIN01",
            "professionOID": "1.2.276.0.76.4.30",
            "organizationName": "Praxis Dr. Sonnenschein",
            "given_name": "Clara",
            "family_name": "Sonnenschein",
            "kim": "clara.sonnenschein@kim.tim.test",
        },
    ]
}
"""The built-in cards (used without ``cards_file``): one SMC-B per demo organisation of the
local run, with the TelematikIDs of their directory entries, and one HBA."""


def parse_cards(data: Any, *, source: str = "") -> tuple[Card, ...]:
    """Validate the parsed YAML ``data`` of a cards file.

    Raises:
        ConfigError: naming the card (index and id) and the field that is wrong.
    """
    try:
        # JSON mode, as for TOML configs: lists validate as tuples, nothing is coerced.
        return CardsFile.model_validate_json(json.dumps(data, default=str)).cards
    except ValidationError as exc:
        raise _config_error(exc, data, source) from None


def load_cards(path: Path | None) -> tuple[Card, ...]:
    """The cards of the YAML file at ``path``; ``None`` yields :data:`DEMO_CARDS`.

    Raises:
        ConfigError: when the file is missing, not YAML, or a card is invalid.
    """
    if path is None:
        return parse_cards(DEMO_CARDS)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from None
    return parse_cards(data, source=str(path))


def _config_error(exc: ValidationError, data: Any, source: str) -> ConfigError:
    first = exc.errors()[0]
    loc = first["loc"]
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    message = message.removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "cards" and isinstance(loc[1], int):
        card = _raw_card(data, loc[1])
        name = card.get("id") if isinstance(card, dict) else None
        message = f"card {name!r}: {message}" if name else f"card #{loc[1] + 1}: {message}"
    path = ".".join(str(part) for part in loc)
    return ConfigError(message, path=path, source=source)


def _raw_card(data: Any, index: int) -> Any:
    cards = data.get("cards") if isinstance(data, dict) else None
    return cards[index] if isinstance(cards, list) and index < len(cards) else None
