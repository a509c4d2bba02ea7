"""gematik's profession OIDs (``professionOID``) with their German display names.

Two code systems, one per card type: an SMC-B carries an institution OID of
``OrganizationProfessionOID`` (``gemSpec_OID`` Tab_PKI_403), an HBA a person OID of
``PractitionerProfessionOID`` (``gemSpec_OID`` Tab_PKI_402). The tables follow
VZD-FHIR-Directory 1.0.1 plus the later additions of its changelogs; no OID is in both.

Pure data and lookups: the IDP stand-in (which cards may carry which OID), the
Registrierungs-Dienst (only institutions register, AF_10103) and the FHIR-Proxy's LDAP mapping
(code displays, HBA or SMC-B) share them.
"""

from __future__ import annotations

ORGANIZATION_PROFESSION_SYSTEM = (
    "https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID"
)
"""FHIR code system of :data:`INSTITUTIONS`."""
PRACTITIONER_PROFESSION_SYSTEM = (
    "https://gematik.de/fhir/directory/CodeSystem/PractitionerProfessionOID"
)
"""FHIR code system of :data:`PERSONS`."""

INSTITUTIONS: dict[str, str] = {
    "1.2.276.0.76.4.50": "Betriebsstätte Arzt",
    "1.2.276.0.76.4.51": "Zahnarztpraxis",
    "1.2.276.0.76.4.52": "Betriebsstätte Psychotherapeut",
    "1.2.276.0.76.4.53": "Krankenhaus",
    "1.2.276.0.76.4.54": "Öffentliche Apotheke",
    "1.2.276.0.76.4.55": "Krankenhausapotheke",
    "1.2.276.0.76.4.56": "Bundeswehrapotheke",
    "1.2.276.0.76.4.57": "Betriebsstätte Mobile Einrichtung Rettungsdienst",
    "1.2.276.0.76.4.58": "Betriebsstätte gematik",
    "1.2.276.0.76.4.59": "Betriebsstätte Kostenträger",
    "1.2.276.0.76.4.187": "Betriebsstätte Leistungserbringerorganisation Vertragszahnärzte",
    "1.2.276.0.76.4.190": "AdV-Umgebung bei Kostenträger",
    "1.2.276.0.76.4.210": (
        "Betriebsstätte Leistungserbringerorganisation Kassenärztliche Vereinigung"
    ),
    "1.2.276.0.76.4.223": "Betriebsstätte GKV-Spitzenverband",
    "1.2.276.0.76.4.226": "Betriebsstätte Mitgliedsverband der Krankenhäuser",
    "1.2.276.0.76.4.227": (
        "Betriebsstätte der Deutsche Krankenhaus TrustCenter und Informationsverarbeitung GmbH"
    ),
    "1.2.276.0.76.4.228": "Betriebsstätte der Deutschen Krankenhausgesellschaft",
    "1.2.276.0.76.4.224": "Betriebsstätte Apothekerverband",
    "1.2.276.0.76.4.225": "Betriebsstätte Deutscher Apothekerverband",
    "1.2.276.0.76.4.229": "Betriebsstätte der Bundesärztekammer",
    "1.2.276.0.76.4.230": "Betriebsstätte einer Ärztekammer",
    "1.2.276.0.76.4.231": "Betriebsstätte einer Zahnärztekammer",
    "1.2.276.0.76.4.242": "Betriebsstätte der Kassenärztlichen Bundesvereinigung",
    "1.2.276.0.76.4.243": "Betriebsstätte der Bundeszahnärztekammer",
    "1.2.276.0.76.4.244": "Betriebsstätte der Kassenzahnärztlichen Bundesvereinigung",
    "1.2.276.0.76.4.245": "Betriebsstätte Gesundheits-, Kranken- und Altenpflege",
    "1.2.276.0.76.4.246": "Betriebsstätte Geburtshilfe",
    "1.2.276.0.76.4.247": "Betriebsstätte Physiotherapie",
    "1.2.276.0.76.4.248": "Betriebsstätte Augenoptiker",
    "1.2.276.0.76.4.249": "Betriebsstätte Hörakustiker",
    "1.2.276.0.76.4.250": "Betriebsstätte Orthopädieschuhmacher",
    "1.2.276.0.76.4.251": "Betriebsstätte Orthopädietechniker",
    "1.2.276.0.76.4.252": "Betriebsstätte Zahntechniker",
    "1.2.276.0.76.4.253": "Rettungsleitstelle",
    "1.2.276.0.76.4.254": "Betriebsstätte Sanitätsdienst Bundeswehr",
    "1.2.276.0.76.4.255": "Betriebsstätte Öffentlicher Gesundheitsdienst",
    "1.2.276.0.76.4.256": "Betriebsstätte Arbeitsmedizin",
    "1.2.276.0.76.4.257": "Betriebsstätte Vorsorge- und Rehabilitation",
    "1.2.276.0.76.4.273": "ePA KTR-Zugriffsautorisierung",
    "1.2.276.0.76.4.262": "Betriebsstätte Pflegeberatung nach § 7a SGB XI",
    "1.2.276.0.76.4.263": "Betriebsstätte Psychotherapeutenkammer",
    "1.2.276.0.76.4.264": "Betriebsstätte Bundespsychotherapeutenkammer",
    "1.2.276.0.76.4.265": "Betriebsstätte Landesapothekerkammer",
    "1.2.276.0.76.4.266": "Betriebsstätte Bundesapothekerkammer",
    "1.2.276.0.76.4.267": "Betriebsstätte elektronisches Gesundheitsberuferegister",
    "1.2.276.0.76.4.268": "Betriebsstätte Handwerkskammer",
    "1.2.276.0.76.4.269": "Betriebsstätte Register für Gesundheitsdaten",
    "1.2.276.0.76.4.270": "Betriebsstätte Abrechnungsdienstleister",
    "1.2.276.0.76.4.271": "Betriebsstätte PKV-Verband",
    "1.2.276.0.76.4.278": "Ergotherapiepraxis",
    "1.2.276.0.76.4.279": "Logopaedische Praxis",
    "1.2.276.0.76.4.280": "Podologiepraxis",
    "1.2.276.0.76.4.281": "Ernährungstherapeutische Praxis",
    "1.2.276.0.76.4.284": "Betriebsstätte Weitere Kostenträger im Gesundheitswesen",
    "1.2.276.0.76.4.285": "Weitere Organisationen der Gesundheitsversorgung",
    "1.2.276.0.76.4.286": "KIM-Hersteller und -Anbieter",
    # Later additions to OrganizationProfessionOID (VZD-FHIR-Directory changelogs, gemSpec_OID).
    "1.2.276.0.76.4.282": "DiGA-Hersteller und -Anbieter",
    "1.2.276.0.76.4.292": "NCPeH Fachdienst",
    "1.2.276.0.76.4.295": "TIM-Hersteller und -Anbieter",
    "1.2.276.0.76.4.311": "Betriebsstätte Hilfsmittelerbringer",
    "1.2.276.0.76.4.314": "Betriebsstätte Frisör",
    "1.2.276.0.76.4.317": "Betriebsstätte Soziotherapie",
}
"""SMC-B profession OIDs (institutions) and their German names."""

PERSONS: dict[str, str] = {
    "1.2.276.0.76.4.30": "Ärztin/Arzt",
    "1.2.276.0.76.4.31": "Zahnärztin/Zahnarzt",
    "1.2.276.0.76.4.32": "Apotheker/-in",
    "1.2.276.0.76.4.33": "Apothekerassistent/-in",
    "1.2.276.0.76.4.34": "Pharmazieingenieur/-in",
    "1.2.276.0.76.4.35": "pharmazeutisch-technische/-r Assistent/-in",
    "1.2.276.0.76.4.36": "pharmazeutisch-kaufmännische/-r Angestellte",
    "1.2.276.0.76.4.37": "Apothekenhelfer/-in",
    "1.2.276.0.76.4.38": "Apothekenassistent/-in",
    "1.2.276.0.76.4.39": "Pharmazeutische/-r Assistent/-in",
    "1.2.276.0.76.4.40": "Apothekenfacharbeiter/-in",
    "1.2.276.0.76.4.41": "Pharmaziepraktikant/-in",
    "1.2.276.0.76.4.42": "Stud.pharm. oder Famulant/-in",
    "1.2.276.0.76.4.43": "PTA-Praktikant/-in",
    "1.2.276.0.76.4.44": "PKA Auszubildende/-r",
    "1.2.276.0.76.4.45": "Psychotherapeut/-in",
    "1.2.276.0.76.4.46": "Psychologische/-r Psychotherapeut/-in",
    "1.2.276.0.76.4.47": "Kinder- und Jugendlichenpsychotherapeut/-in",
    "1.2.276.0.76.4.48": "Rettungsassistent/-in",
    "1.2.276.0.76.4.49": "Versicherte/-r",
    "1.2.276.0.76.4.178": "Notfallsanitäter/-in",
    "1.2.276.0.76.4.232": (
        "Gesundheits- und Krankenpfleger/-in, Gesundheits- und Kinderkrankenpfleger/-in"
    ),
    "1.2.276.0.76.4.233": "Altenpfleger/-in",
    "1.2.276.0.76.4.234": "Pflegefachfrauen und Pflegefachmänner",
    "1.2.276.0.76.4.235": "Hebamme",
    "1.2.276.0.76.4.236": "Physiotherapeut/-in",
    "1.2.276.0.76.4.237": "Augenoptiker/-in und Optometrist/-in",
    "1.2.276.0.76.4.238": "Hörakustiker/-in",
    "1.2.276.0.76.4.239": "Orthopädieschuhmacher/-in",
    "1.2.276.0.76.4.240": "Orthopädietechniker/-in",
    "1.2.276.0.76.4.241": "Zahntechniker/-in",
    "1.2.276.0.76.4.274": "Ergotherapeut/-in",
    "1.2.276.0.76.4.275": "Logopäde/Logopädin",
    "1.2.276.0.76.4.276": "Podologe/Podologin",
    "1.2.276.0.76.4.277": "Ernährungstherapeut/-in",
    # Later additions to PractitionerProfessionOID.
    "1.2.276.0.76.4.308": "Augenoptiker/-in und Hörakustiker/-in",
    "1.2.276.0.76.4.312": "Hilfsmittelerbringer/-in",
    "1.2.276.0.76.4.313": "Frisör/-in",
    "1.2.276.0.76.4.315": "Masseur/-in und medizinische/-r Bademeister/-in",
    "1.2.276.0.76.4.316": "Leistungserbringer/-in Soziotherapie",
    "1.2.276.0.76.4.318": "Leistungserbringer/-in Stimm-, Sprech-, Sprach- und Schluck-Therapie",
    "1.2.276.0.76.4.319": "Diätassistent/-in",
}
"""HBA profession OIDs (persons) and their German names."""


def is_institution(oid: str) -> bool:
    """Whether ``oid`` is an institution (SMC-B) profession OID."""
    return oid in INSTITUTIONS


def is_person(oid: str) -> bool:
    """Whether ``oid`` is a person (HBA) profession OID."""
    return oid in PERSONS


def display(oid: str) -> str:
    """The German name of the profession OID ``oid``; empty for an OID in neither table."""
    return INSTITUTIONS.get(oid) or PERSONS.get(oid, "")
