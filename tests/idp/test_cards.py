"""The virtual smartcards: strict validation naming card and field; the page escapes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.idp.conftest import MakeIdp
from timkit.core.errors import ConfigError
from timkit.idp.cards import DEMO_CARDS, load_cards, parse_cards

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "idp-cards.sample.yaml"

SMCB = {
    "id": "apotheke",
    "type": "SMC-B",
    "telematikID": "3-SMC-B-Testkarte-883110000129070",
    "professionOID": "1.2.276.0.76.4.54",
    "organizationName": "Apotheke am Markt",
}


def test_the_sample_file_holds_the_built_in_demo_cards() -> None:
    assert load_cards(SAMPLE) == load_cards(None) == parse_cards(DEMO_CARDS)
    kinds = [card.type for card in load_cards(SAMPLE)]
    assert kinds.count("SMC-B") >= 2
    assert kinds.count("HBA") >= 1


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"professionOID": "1.2.276.0.76.4.30"}, "cards.1.professionOID", "person (HBA)"),
        ({"professionOID": "1.2.3"}, "cards.1.professionOID", "not a gematik profession OID"),
        ({"type": "eGK"}, "cards.1.type", "'SMC-B' or 'HBA'"),
        ({"telematikID": 12345}, "cards.1.telematikID", "valid string"),
        ({"organizationName": ""}, "cards.1", "organizationName is required"),
        ({"colour": "blue"}, "cards.1.colour", "unknown key"),
        ({"kim": "not-an-address"}, "cards.1.kim", "pattern"),
    ],
)
def test_invalid_card_is_named_with_its_field(
    tmp_path: Path, change: dict[str, object], path: str, words: str
) -> None:
    cards_file = tmp_path / "cards.yaml"
    cards_file.write_text(yaml.safe_dump({"cards": [SMCB, {**SMCB, "id": "bad", **change}]}))
    with pytest.raises(ConfigError) as err:
        load_cards(cards_file)
    message = str(err.value)
    assert message.startswith(f"{cards_file}: {path}: card 'bad': ")
    assert words in message


def test_hba_needs_both_names() -> None:
    hba = {**SMCB, "id": "hba", "type": "HBA", "professionOID": "1.2.276.0.76.4.32"}
    with pytest.raises(ConfigError, match=r"cards\.0: card 'hba': given_name and family_name"):
        parse_cards({"cards": [{**hba, "given_name": "Anna"}]})


def test_duplicate_ids_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="card id 'apotheke' is used twice"):
        parse_cards({"cards": [SMCB, SMCB]})
    with pytest.raises(ConfigError, match=r"cards: .*at least 1 item"):
        parse_cards({"cards": []})
    (tmp_path / "broken.yaml").write_text("cards: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cards(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_cards(tmp_path / "missing.yaml")


async def test_card_fields_are_escaped_on_the_page(tmp_path: Path, make_idp: MakeIdp) -> None:
    cards_file = tmp_path / "cards.yaml"
    evil = {**SMCB, "organizationName": "<script>alert(1)</script> & Co"}
    cards_file.write_text(yaml.safe_dump({"cards": [evil]}))
    idp = await make_idp(cards_file=cards_file)
    page = (await idp.page()).text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
