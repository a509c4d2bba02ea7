"""Realistic synthetic VZD-FHIR-Directory data, streamed as FHIR R4 JSON dicts.

Contract of :func:`generate` (``organizations`` units of one kind, ``practitioners`` of the
other, ``seed``):

* **Count** - every unit yields exactly four resources, so the stream holds
  ``Shape(organizations, practitioners).total()`` resources.

  - organisation unit ``n``: ``Organization/org-<n>``, ``Location/loc-<n>``,
    ``Endpoint/ep-org-<n>`` (TI-M, ``matrix:u/<function>:<org-domain>``) and
    ``HealthcareService/hs-<n>`` (``providedBy``, ``location``, ``endpoint``);
  - practitioner unit ``n``: ``Practitioner/pract-<n>``, ``Location/loc-pract-<n>``,
    ``Endpoint/ep-pract-<n>`` (personal MXID) and ``PractitionerRole/role-<n>``
    (``practitioner``, ``location``, ``endpoint``; about 60 % also ``organization`` and
    ``healthcareService`` of an organisation yielded before).

  ``<n>`` counts from 1, zero-padded to six digits. Units of both kinds are interleaved in
  proportion (an organisation unit first), so any prefix of the stream is a representative
  sample, and every ``reference`` points at a resource yielded earlier.
* **Shape of the data** - as gematik's api-vzd 1.1.1 examples and the test directory:
  ``meta.profile`` ``…/StructureDefinition/<Type>Directory``, ``meta.tag`` Origin ``ldap``
  (``owner`` on the TI-M Endpoints, which their owners register), TelematikIDs
  (``https://gematik.de/fhir/sid/telematik-id``) following the card issuers' patterns
  (gemILF_Pflege_VZD) and unique, ``Organization.type`` / ``Practitioner.qualification`` from
  the OrganizationProfessionOID / PractitionerProfessionOID code systems, chosen consistently
  with the organisation's name and the practitioner's employer. Names, streets, cities (postal
  code, state, dialling code, coordinates) are German and real; cities are weighted by
  population. About 2 % of organisations and practitioners are ``active: false``.
* **Determinism** - the output is a function of the arguments alone (one
  ``random.Random(seed)``, no global state).
* **Ownership** - every yielded dict and everything mutable in it is new; the caller may
  mutate it. Only immutable values (strings, numbers) are shared.
* **Speed** - a few microseconds per resource: constant parts are precomputed, resources are
  built as literals.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from math import sqrt
from typing import Any, Generic, TypeVar

from timkit.core.fhir import (
    CONNECTION_TYPE,
    ENDPOINT_PROFILE,
    HEALTHCARE_SERVICE_PROFILE,
    LOCATION_PROFILE,
    ORGANIZATION_PROFILE,
    ORIGIN,
    PAYLOAD_TYPE,
    PRACTITIONER_PROFILE,
    PRACTITIONER_ROLE_PROFILE,
    TELEMATIK_ID,
)

T = TypeVar("T")
Resource = dict[str, Any]

# --- canonical URLs ---------------------------------------------------------------------------

ORGANIZATION_PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID"
PRACTITIONER_PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/PractitionerProfessionOID"
MEDICAL_SPECIALTY = "urn:oid:1.3.6.1.4.1.19376.3.276.1.5.4"  # ärztliche Fachrichtungen
NON_MEDICAL_SPECIALTY = "urn:oid:1.3.6.1.4.1.19376.3.276.1.5.5"  # nicht-ärztliche
SPECIALIST_QUALIFICATION = "urn:oid:1.2.276.0.76.5.114"  # KBV Facharzt-/Schwerpunkt-Kennzeichen
PHARMACY_TYPE = "https://gematik.de/fhir/directory/CodeSystem/PharmacyTypeCS"
PHARMACY_SPECIALTY = "https://gematik.de/fhir/directory/CodeSystem/PharmacyHealthcareSpecialtyCS"
SERVICE_SPECIALTY = "https://gematik.de/fhir/directory/CodeSystem/HealthcareServiceSpecialtyCS"

MATRIX_DOMAIN = "tim.test"  # reserved TLD: the homeserver domains are synthetic
RESOURCES_PER_UNIT = 4
INACTIVE_SHARE = 0.02
EMPLOYED_SHARE = 0.6  # practitioners linked to an organisation (when there is one)
_RECENT_ORGANIZATIONS = 1024  # practitioners pick their employer among the last ones
_SERIAL_DIGITS = 8

# --- German reference data ----------------------------------------------------------------------

FAMILY_NAMES: tuple[str, ...] = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
    "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier",
    "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters",
    "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Schubert", "Vogel", "Friedrich",
    "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann",
    "Franke", "Albrecht", "Schuster", "Simon", "Ludwig", "Böhm", "Winter", "Kraus", "Martin",
    "Schumacher", "Krämer", "Vogt", "Stein", "Jäger", "Otto", "Sommer", "Groß", "Seidel",
    "Heinrich", "Brandt", "Haas", "Schreiber", "Graf", "Schulte", "Dietrich", "Ziegler", "Kuhn",
    "Kühn", "Pohl", "Engel", "Horn", "Busch", "Bergmann", "Thomas", "Voigt", "Sauer", "Arnold",
    "Wolff", "Pfeiffer", "Ernst", "Lindner", "Hübner", "Kramer", "Franz", "Peter", "Jansen",
    "Götz", "Hansen", "Paul", "Wilhelm", "Brinkmann", "Schenk", "Thiele", "Barth", "Reuter",
    "Nowak", "Förster", "Strauß", "Rößler", "Nußbaum", "Großmann", "Süß", "Döring", "Göbel",
    "Jürgens", "Gärtner", "Schütz", "Böttcher", "Schlüter", "Hölzel", "Würth", "Kößler",
    "Dreßler", "Weißenborn", "Wagner-Böhm", "Schmidt-Weber", "Mößner", "Lübke",
    "Rühl", "Fröhlich", "Küster", "Bühler", "Brückner", "Dörr", "Sträter", "Körner", "Löffler",
    "Mühlbauer", "Oßwald", "Pütz", "Rösch", "Schäuble", "Thür", "Wößner", "Zöllner", "Ahrens",
    "Bock", "Busse", "Claßen", "Decker", "Eckert", "Fiedler", "Geiger", "Hauser", "Heinz",
    "Jakob", "Kirchner", "Kolb", "Kurz", "Lenz", "Marx", "Michel", "Nagel", "Oswald", "Petersen",
    "Popp", "Ritter", "Sander", "Schwab", "Seifert", "Stahl", "Ulrich", "Vetter", "Walther",
    "Wendt", "Wiese", "Witt", "Yilmaz", "Kaya", "Demir", "Nguyen", "Kowalski", "Novak",
    "Schwarzkopf", "Aßmann", "Haußmann",
)  # fmt: skip
FEMALE_GIVEN_NAMES: tuple[str, ...] = (
    "Anna", "Maria", "Sophie", "Julia", "Laura", "Lea", "Lena", "Hannah", "Katharina", "Sarah",
    "Lisa", "Johanna", "Clara", "Charlotte", "Emma", "Mia", "Marie", "Sabine", "Petra",
    "Claudia", "Susanne", "Andrea", "Stefanie", "Nicole", "Birgit", "Monika", "Ute", "Heike",
    "Karin", "Gabriele", "Ursula", "Renate", "Christine", "Martina", "Anja", "Silke", "Tanja",
    "Kerstin", "Jana", "Franziska", "Miriam", "Friederike", "Jutta", "Elke", "Dörte", "Bärbel",
    "Margarete", "Helga", "Ingrid", "Käthe", "Greta", "Paula", "Ida", "Frieda", "Luise",
    "Merle", "Carolin", "Verena", "Annika", "Nadine", "Melanie", "Jördis", "Ayşe", "Elif",
)  # fmt: skip
MALE_GIVEN_NAMES: tuple[str, ...] = (
    "Thomas", "Michael", "Andreas", "Stefan", "Christian", "Markus", "Frank", "Jürgen", "Peter",
    "Klaus", "Wolfgang", "Uwe", "Jörg", "Matthias", "Alexander", "Daniel", "Sebastian", "Tobias",
    "Florian", "Jan", "Tim", "Lukas", "Jonas", "Felix", "Maximilian", "Paul", "Leon", "Finn",
    "Niklas", "Moritz", "Philipp", "Simon", "David", "Johannes", "Benedikt", "Martin", "Ralf",
    "Dirk", "Holger", "Torsten", "Bernd", "Hans", "Günter", "Dieter", "Horst", "Heinz", "Karl",
    "Friedrich", "Wilhelm", "Björn", "Sören", "Jens", "Lars", "Kai", "Henrik", "Konstantin",
    "Till", "Malte", "Ole", "Jannik", "Mehmet", "Can",
)  # fmt: skip
STREETS: tuple[str, ...] = (
    "Hauptstraße", "Bahnhofstraße", "Schulstraße", "Gartenstraße", "Dorfstraße", "Bergstraße",
    "Birkenweg", "Lindenstraße", "Kirchstraße", "Waldstraße", "Ringstraße", "Schillerstraße",
    "Goethestraße", "Mühlenweg", "Wiesenweg", "Am Sportplatz", "Jahnstraße", "Feldstraße",
    "Rosenstraße", "Buchenweg", "Am Markt", "Marktplatz", "Poststraße", "Parkstraße",
    "Mozartstraße", "Beethovenstraße", "Eichendorffstraße", "Friedrichstraße", "Wilhelmstraße",
    "Kaiserstraße", "Königstraße", "Luisenstraße", "Uhlandstraße", "Lessingstraße",
    "Heinrich-Heine-Straße", "Kantstraße", "Bismarckstraße", "Rathausstraße", "Talstraße",
    "Am Anger", "Brunnenstraße", "Sonnenstraße", "Fliederweg", "Ahornweg", "Tulpenweg",
    "Marienstraße", "Karlstraße", "Ludwigstraße", "Theodor-Heuss-Straße",
    "Konrad-Adenauer-Straße", "Willy-Brandt-Platz", "Breite Straße", "Lange Straße",
    "Alte Landstraße", "Grüner Weg", "Schloßstraße", "Domplatz", "Weißenburger Straße",
    "Mühlstraße", "Große Straße", "Hölderlinweg", "Käthe-Kollwitz-Straße",
    "Bürgermeister-Smidt-Straße",
)  # fmt: skip
_PHARMACY_EMBLEMS: tuple[str, ...] = (
    "Adler", "Löwen", "Rathaus", "Stern", "Sonnen", "Bären", "Hirsch", "Linden", "Markt",
    "Schloss", "Bahnhof", "Park", "Brunnen", "Einhorn", "Engel", "Kronen", "Hof", "Stadt",
    "Rosen", "Greifen", "Falken", "Storchen", "Eichen", "Mühlen", "Post", "Kloster", "Dom",
)  # fmt: skip
_LANDMARKS: tuple[str, ...] = (
    "Markt", "Rathaus", "Dom", "Bahnhof", "Schlossplatz", "Stadtpark", "Marktplatz", "Ring",
    "Kirchplatz", "Wall", "Stadttor", "Brunnen", "Lindenplatz", "Hafen", "Theater",
)  # fmt: skip
_HOSPITAL_NAMES: tuple[str, ...] = (
    "Klinikum", "Städtisches Klinikum", "Universitätsklinikum", "St. Marien-Hospital",
    "St. Elisabeth-Krankenhaus", "St. Josef-Hospital", "St. Vinzenz-Krankenhaus",
    "Evangelisches Krankenhaus", "Kreiskrankenhaus", "Helios Klinikum",
)  # fmt: skip
_QUARTERS: tuple[str, ...] = ("Nord", "Süd", "Mitte", "Ost", "West")

# State (AddressStateVS = CodeSystem Region) and KV region code per Kassenärztliche Vereinigung.
_REGIONS: dict[str, tuple[str, str]] = {
    "SH": ("Schleswig-Holstein", "01"),
    "HH": ("Hamburg", "02"),
    "HB": ("Bremen", "03"),
    "NI": ("Niedersachsen", "17"),
    "WL": ("Nordrhein-Westfalen", "20"),  # KV Westfalen-Lippe
    "NO": ("Nordrhein-Westfalen", "38"),  # KV Nordrhein
    "HE": ("Hessen", "46"),
    "RP": ("Rheinland-Pfalz", "51"),
    "BW": ("Baden-Württemberg", "52"),
    "BY": ("Bayern", "71"),
    "BE": ("Berlin", "72"),
    "SL": ("Saarland", "73"),
    "MV": ("Mecklenburg-Vorpommern", "78"),
    "BB": ("Brandenburg", "83"),
    "ST": ("Sachsen-Anhalt", "88"),
    "TH": ("Thüringen", "93"),
    "SN": ("Sachsen", "98"),
}

# name, region, postal codes (first, last), latitude, longitude, population (thousands), dialling
_CITY_ROWS: tuple[tuple[str, str, int, int, float, float, int, str], ...] = (
    ("Berlin", "BE", 10115, 14199, 52.5200, 13.4050, 3755, "030"),
    ("Hamburg", "HH", 20095, 22769, 53.5511, 9.9937, 1892, "040"),
    ("München", "BY", 80331, 81929, 48.1374, 11.5755, 1512, "089"),
    ("Köln", "NO", 50667, 51149, 50.9375, 6.9603, 1084, "0221"),
    ("Frankfurt am Main", "HE", 60306, 60599, 50.1109, 8.6821, 773, "069"),
    ("Stuttgart", "BW", 70173, 70629, 48.7758, 9.1829, 633, "0711"),
    ("Düsseldorf", "NO", 40210, 40629, 51.2277, 6.7735, 631, "0211"),
    ("Leipzig", "SN", 4103, 4357, 51.3397, 12.3731, 616, "0341"),
    ("Dortmund", "WL", 44135, 44388, 51.5136, 7.4653, 595, "0231"),
    ("Essen", "NO", 45127, 45359, 51.4556, 7.0116, 586, "0201"),
    ("Bremen", "HB", 28195, 28779, 53.0793, 8.8017, 577, "0421"),
    ("Dresden", "SN", 1067, 1328, 51.0504, 13.7373, 566, "0351"),
    ("Hannover", "NI", 30159, 30669, 52.3759, 9.7320, 548, "0511"),
    ("Nürnberg", "BY", 90402, 90491, 49.4521, 11.0767, 526, "0911"),
    ("Duisburg", "NO", 47051, 47279, 51.4344, 6.7623, 503, "0203"),
    ("Bochum", "WL", 44787, 44894, 51.4818, 7.2162, 366, "0234"),
    ("Wuppertal", "NO", 42103, 42399, 51.2562, 7.1508, 358, "0202"),
    ("Bielefeld", "WL", 33602, 33739, 52.0302, 8.5325, 338, "0521"),
    ("Bonn", "NO", 53111, 53229, 50.7374, 7.0982, 336, "0228"),
    ("Münster", "WL", 48143, 48167, 51.9607, 7.6261, 320, "0251"),
    ("Mannheim", "BW", 68159, 68309, 49.4875, 8.4660, 315, "0621"),
    ("Karlsruhe", "BW", 76131, 76229, 49.0069, 8.4037, 308, "0721"),
    ("Augsburg", "BY", 86150, 86199, 48.3705, 10.8978, 301, "0821"),
    ("Wiesbaden", "HE", 65183, 65207, 50.0782, 8.2398, 283, "0611"),
    ("Mönchengladbach", "NO", 41061, 41239, 51.1805, 6.4428, 268, "02161"),
    ("Gelsenkirchen", "WL", 45879, 45899, 51.5177, 7.0857, 263, "0209"),
    ("Aachen", "NO", 52062, 52080, 50.7753, 6.0839, 249, "0241"),
    ("Braunschweig", "NI", 38100, 38126, 52.2689, 10.5268, 251, "0531"),
    ("Kiel", "SH", 24103, 24159, 54.3233, 10.1228, 247, "0431"),
    ("Chemnitz", "SN", 9111, 9247, 50.8278, 12.9214, 244, "0371"),
    ("Halle (Saale)", "ST", 6108, 6132, 51.4964, 11.9688, 239, "0345"),
    ("Magdeburg", "ST", 39104, 39130, 52.1205, 11.6276, 237, "0391"),
    ("Freiburg im Breisgau", "BW", 79098, 79117, 47.9990, 7.8421, 231, "0761"),
    ("Krefeld", "NO", 47798, 47839, 51.3388, 6.5853, 228, "02151"),
    ("Mainz", "RP", 55116, 55131, 49.9929, 8.2473, 218, "06131"),
    ("Lübeck", "SH", 23552, 23570, 53.8655, 10.6866, 216, "0451"),
    ("Erfurt", "TH", 99084, 99099, 50.9848, 11.0299, 214, "0361"),
    ("Oberhausen", "NO", 46045, 46149, 51.4963, 6.8638, 209, "0208"),
    ("Rostock", "MV", 18055, 18147, 54.0924, 12.0991, 209, "0381"),
    ("Kassel", "HE", 34117, 34134, 51.3127, 9.4797, 201, "0561"),
    ("Hagen", "WL", 58089, 58135, 51.3671, 7.4633, 189, "02331"),
    ("Potsdam", "BB", 14467, 14482, 52.3906, 13.0645, 183, "0331"),
    ("Saarbrücken", "SL", 66111, 66133, 49.2402, 6.9969, 180, "0681"),
    ("Hamm", "WL", 59063, 59077, 51.6739, 7.8159, 180, "02381"),
    ("Ludwigshafen am Rhein", "RP", 67059, 67071, 49.4774, 8.4452, 173, "0621"),
    ("Mülheim an der Ruhr", "NO", 45468, 45481, 51.4275, 6.8825, 170, "0208"),
    ("Oldenburg", "NI", 26121, 26135, 53.1435, 8.2146, 170, "0441"),
    ("Osnabrück", "NI", 49074, 49090, 52.2799, 8.0472, 165, "0541"),
    ("Leverkusen", "NO", 51371, 51381, 51.0459, 6.9853, 163, "0214"),
    ("Darmstadt", "HE", 64283, 64297, 49.8728, 8.6512, 160, "06151"),
    ("Heidelberg", "BW", 69115, 69126, 49.3988, 8.6724, 159, "06221"),
    ("Solingen", "NO", 42651, 42719, 51.1652, 7.0671, 159, "0212"),
    ("Herne", "WL", 44623, 44653, 51.5369, 7.2009, 156, "02323"),
    ("Regensburg", "BY", 93047, 93059, 49.0134, 12.1016, 153, "0941"),
    ("Paderborn", "WL", 33098, 33109, 51.7189, 8.7575, 152, "05251"),
    ("Neuss", "NO", 41460, 41472, 51.2042, 6.6879, 152, "02131"),
    ("Ingolstadt", "BY", 85049, 85057, 48.7665, 11.4258, 138, "0841"),
    ("Offenbach am Main", "HE", 63065, 63075, 50.0956, 8.7761, 131, "069"),
    ("Fürth", "BY", 90762, 90768, 49.4771, 10.9887, 129, "0911"),
    ("Würzburg", "BY", 97070, 97084, 49.7913, 9.9534, 126, "0931"),
    ("Ulm", "BW", 89073, 89081, 48.4011, 9.9876, 126, "0731"),
    ("Heilbronn", "BW", 74072, 74081, 49.1427, 9.2109, 126, "07131"),
    ("Pforzheim", "BW", 75172, 75181, 48.8922, 8.6946, 125, "07231"),
    ("Wolfsburg", "NI", 38440, 38448, 52.4227, 10.7865, 124, "05361"),
    ("Bottrop", "WL", 46236, 46244, 51.5236, 6.9285, 117, "02041"),
    ("Göttingen", "NI", 37073, 37085, 51.5413, 9.9158, 116, "0551"),
    ("Reutlingen", "BW", 72760, 72770, 48.4914, 9.2043, 116, "07121"),
    ("Koblenz", "RP", 56068, 56077, 50.3569, 7.5890, 114, "0261"),
    ("Bremerhaven", "HB", 27568, 27580, 53.5396, 8.5809, 113, "0471"),
    ("Erlangen", "BY", 91052, 91058, 49.5897, 11.0040, 113, "09131"),
    ("Bergisch Gladbach", "NO", 51427, 51469, 50.9918, 7.1367, 111, "02202"),
    ("Remscheid", "NO", 42853, 42899, 51.1787, 7.1897, 111, "02191"),
    ("Jena", "TH", 7743, 7751, 50.9272, 11.5892, 110, "03641"),
    ("Recklinghausen", "WL", 45657, 45665, 51.6141, 7.1979, 110, "02361"),
    ("Trier", "RP", 54290, 54296, 49.7499, 6.6371, 110, "0651"),
    ("Salzgitter", "NI", 38226, 38259, 52.1503, 10.3593, 104, "05341"),
    ("Moers", "NO", 47441, 47447, 51.4516, 6.6263, 104, "02841"),
    ("Siegen", "WL", 57072, 57080, 50.8748, 8.0243, 101, "0271"),
    ("Hildesheim", "NI", 31134, 31141, 52.1508, 9.9511, 101, "05121"),
    ("Gütersloh", "WL", 33330, 33335, 51.9032, 8.3858, 101, "05241"),
    ("Kaiserslautern", "RP", 67655, 67663, 49.4447, 7.7690, 100, "0631"),
    ("Cottbus", "BB", 3042, 3055, 51.7563, 14.3329, 99, "0355"),
    ("Hanau", "HE", 63450, 63457, 50.1264, 8.9283, 98, "06181"),
    ("Witten", "WL", 58452, 58456, 51.4436, 7.3527, 96, "02302"),
    ("Schwerin", "MV", 19053, 19063, 53.6355, 11.4012, 96, "0385"),
    ("Esslingen am Neckar", "BW", 73728, 73734, 48.7406, 9.3108, 95, "0711"),
    ("Ludwigsburg", "BW", 71634, 71642, 48.8975, 9.1922, 94, "07141"),
    ("Gera", "TH", 7545, 7557, 50.8782, 12.0824, 93, "0365"),
    ("Iserlohn", "WL", 58636, 58644, 51.3759, 7.6946, 92, "02371"),
    ("Düren", "NO", 52349, 52355, 50.8038, 6.4833, 92, "02421"),
    ("Flensburg", "SH", 24937, 24944, 54.7937, 9.4469, 92, "0461"),
    ("Gießen", "HE", 35390, 35398, 50.5841, 8.6784, 92, "0641"),
    ("Tübingen", "BW", 72070, 72076, 48.5216, 9.0576, 91, "07071"),
    ("Zwickau", "SN", 8056, 8066, 50.7189, 12.4961, 87, "0375"),
    ("Ratingen", "NO", 40878, 40885, 51.2973, 6.8493, 87, "02102"),
    ("Konstanz", "BW", 78462, 78467, 47.6779, 9.1732, 86, "07531"),
    ("Worms", "RP", 67547, 67551, 49.6341, 8.3507, 84, "06241"),
    ("Neumünster", "SH", 24534, 24539, 54.0714, 9.9842, 80, "04321"),
    ("Dessau-Roßlau", "ST", 6842, 6849, 51.8386, 12.2459, 79, "0340"),
    ("Bamberg", "BY", 96047, 96052, 49.8988, 10.9028, 79, "0951"),
    ("Lüneburg", "NI", 21335, 21339, 53.2464, 10.4115, 78, "04131"),
    ("Marburg", "HE", 35037, 35043, 50.8021, 8.7667, 77, "06421"),
    ("Bayreuth", "BY", 95444, 95448, 49.9456, 11.5713, 74, "0921"),
    ("Landshut", "BY", 84028, 84036, 48.5442, 12.1469, 74, "0871"),
    ("Brandenburg an der Havel", "BB", 14770, 14776, 52.4125, 12.5316, 73, "03381"),
    ("Celle", "NI", 29221, 29229, 52.6226, 10.0805, 70, "05141"),
    ("Kempten (Allgäu)", "BY", 87435, 87439, 47.7286, 10.3158, 70, "0831"),
    ("Fulda", "HE", 36037, 36043, 50.5558, 9.6808, 69, "0661"),
    ("Weimar", "TH", 99423, 99428, 50.9795, 11.3235, 65, "03643"),
    ("Rosenheim", "BY", 83022, 83026, 47.8571, 12.1181, 64, "08031"),
    ("Neubrandenburg", "MV", 17033, 17036, 53.5572, 13.2610, 64, "0395"),
    ("Plauen", "SN", 8523, 8529, 50.4950, 12.1383, 64, "03741"),
    ("Stralsund", "MV", 18435, 18439, 54.3091, 13.0818, 60, "03831"),
    ("Greifswald", "MV", 17489, 17493, 54.0865, 13.3923, 59, "03834"),
    ("Frankfurt (Oder)", "BB", 15230, 15236, 52.3471, 14.5506, 57, "0335"),
    ("Görlitz", "SN", 2826, 2829, 51.1526, 14.9872, 56, "03581"),
    ("Passau", "BY", 94032, 94036, 48.5665, 13.4312, 53, "0851"),
    ("Emden", "NI", 26721, 26725, 53.3670, 7.2060, 50, "04921"),
    ("Neunkirchen", "SL", 66538, 66540, 49.3447, 7.1801, 46, "06821"),
    ("Lutherstadt Wittenberg", "ST", 6886, 6889, 51.8666, 12.6484, 45, "03491"),
    ("Homburg", "SL", 66424, 66424, 49.3268, 7.3380, 42, "06841"),
    ("Halberstadt", "ST", 38820, 38820, 51.8958, 11.0566, 40, "03941"),
    ("Suhl", "TH", 98527, 98529, 50.6095, 10.6935, 36, "03681"),
)  # fmt: skip


# --- derived tables ------------------------------------------------------------------------------

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ş": "s"})
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """``text`` as a DNS label / Matrix localpart: ``Dr. Jörg Weiß`` → ``dr-joerg-weiss``."""
    return _NOT_SLUG.sub("-", text.lower().translate(_UMLAUTS)).strip("-")


@dataclass(frozen=True, slots=True)
class City:
    """A real German city with what an address there needs."""

    name: str
    state: str  # CodeSystem Region, e.g. "Nordrhein-Westfalen"
    region: str  # two-digit KV region, part of TelematikIDs
    first_postal_code: int
    last_postal_code: int
    latitude: float
    longitude: float
    population: int  # thousands; the city's weight
    dialling_code: str
    slug: str
    radius: float  # degrees of jitter around the centre


def _city(row: tuple[str, str, int, int, float, float, int, str]) -> City:
    name, region, first, last, latitude, longitude, population, dialling = row
    state, kv = _REGIONS[region]
    radius = 0.01 + 0.0025 * sqrt(population)  # Berlin ±0.16°, a town ±0.03°
    return City(
        name, state, kv, first, last, latitude, longitude, population, dialling, slug(name), radius
    )


CITIES: tuple[City, ...] = tuple(_city(row) for row in _CITY_ROWS)


@dataclass(frozen=True, slots=True)
class _Weighted(Generic[T]):
    """Items with weights, drawn by bisecting the cumulative weights."""

    items: tuple[T, ...]
    bounds: tuple[float, ...]  # cumulative weights but the last: a bisect is always an index
    total: float

    @classmethod
    def of(cls, pairs: Sequence[tuple[T, float]]) -> _Weighted[T]:
        cumulative = tuple(accumulate(weight for _, weight in pairs))
        return cls(tuple(item for item, _ in pairs), cumulative[:-1], cumulative[-1])


class _Draw:
    """The random choices of one run, all from one ``random.Random(seed)``."""

    __slots__ = ("random",)

    def __init__(self, seed: int) -> None:
        # Synthetic test data, not secrets: a seeded PRNG is the point.
        self.random = random.Random(seed).random  # noqa: S311

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def weighted(self, table: _Weighted[T]) -> T:
        return table.items[bisect_right(table.bounds, self.random() * table.total)]

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def number(self, first: int, last: int) -> int:
        return first + int(self.random() * (last - first + 1))


_CITY_TABLE = _Weighted.of([(city, city.population) for city in CITIES])
_SLUGS: dict[str, str] = {
    name: slug(name)
    for names in (FAMILY_NAMES, FEMALE_GIVEN_NAMES, MALE_GIVEN_NAMES, _PHARMACY_EMBLEMS)
    for name in names
}
_SLUGS.update((name, slug(name)) for name in (*_LANDMARKS, *_HOSPITAL_NAMES, *_QUARTERS))


# --- professions, services and kinds of organisation ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Coding:
    """An immutable FHIR Coding; :meth:`json` makes a fresh dict of it."""

    system: str
    code: str
    display: str

    def json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class _Service:
    """What a HealthcareService offers: its type and what staff there are qualified as."""

    type: Coding
    practice: str  # "Praxis für Kinder- und Jugendmedizin", "Klinik für Urologie"
    qualification: Coding | None = None  # Facharzt coding of physicians working there
    specialties: tuple[tuple[Coding, float], ...] = ()  # optional specialty codings


_VACCINATION = Coding(SERVICE_SPECIALTY, "impfung", "Impfung")
_GENERAL_PRACTICE = _Service(
    Coding(MEDICAL_SPECIALTY, "ALLG", "Allgemeinmedizin"),
    "Praxis für Allgemeinmedizin",
    Coding(SPECIALIST_QUALIFICATION, "010", "FA Allgemeinmedizin"),
    ((_VACCINATION, 0.6),),
)
# HealthcareService.type (ärztliche Fachrichtung), name of such a practice or department, and
# the Facharzt qualification (KBV) of physicians working there; with weights.
_PRACTICE_ROWS: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("INNE", "Innere Medizin", "080", "FA Innere Medizin", "", 12),
    ("KIJU", "Kinder- und Jugendmedizin", "341", "FA Kinder-und Jugendmedizin", "", 7),
    ("FRAU", "Frauenheilkunde und Geburtshilfe", "050", "FA Frauenheilkunde und Geburtshilfe",
     "Frauenarztpraxis", 7),
    ("AUGE", "Augenheilkunde", "030", "FA Augenheilkunde", "Augenarztpraxis", 5),
    ("HNOH", "Hals-Nasen-Ohrenheilkunde", "060", "FA Hals-, Nasen-, Ohrenheilkunde", "HNO-Praxis",
     4),
    ("HAUT", "Haut- und Geschlechtskrankheiten", "070", "FA Haut- und Geschlechtskrankheiten",
     "Hautarztpraxis", 4),
    ("ORTH", "Orthopädie", "512", "FA Orthopädie und Unfallchirurgie", "", 6),
    ("UROL", "Urologie", "200", "FA Urologie", "Urologische Praxis", 3),
    ("NEUR", "Neurologie", "142", "FA Neurologie", "", 3),
    ("PSYC", "Psychiatrie und Psychotherapie", "147", "FA Psychiatrie und Psychotherapie", "", 3),
    ("KARD", "Kardiologie", "525", "FA Innere Medizin und (SP) Kardiologie", "", 3),
    ("RADI", "Radiologie", "535", "FA Radiologie (neue (M-)WBO)", "Radiologische Praxis", 2),
    ("ALCH", "Allgemeinchirurgie", "544", "FA Allgemeinchirurgie", "Chirurgische Praxis", 3),
    ("GAST", "Gastroenterologie", "523", "FA Innere Medizin und (SP) Gastroenterologie", "", 2),
)  # fmt: skip
_HOSPITAL_ROWS: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("INNE", "Innere Medizin", "080", "FA Innere Medizin", "Klinik für Innere Medizin", 5),
    ("ALCH", "Allgemeinchirurgie", "544", "FA Allgemeinchirurgie",
     "Klinik für Allgemeinchirurgie", 3),
    ("NOTF", "Notfallmedizin", "020", "FA Anästhesiologie", "Zentrale Notaufnahme", 3),
    ("ANAE", "Anästhesiologie", "020", "FA Anästhesiologie", "Klinik für Anästhesiologie", 2),
    ("KARD", "Kardiologie", "525", "FA Innere Medizin und (SP) Kardiologie",
     "Klinik für Kardiologie", 2),
    ("FRAU", "Frauenheilkunde und Geburtshilfe", "050", "FA Frauenheilkunde und Geburtshilfe",
     "Frauenklinik", 2),
    ("KIJU", "Kinder- und Jugendmedizin", "341", "FA Kinder-und Jugendmedizin",
     "Klinik für Kinder- und Jugendmedizin", 2),
    ("NEUR", "Neurologie", "142", "FA Neurologie", "Klinik für Neurologie", 1),
    ("UROL", "Urologie", "200", "FA Urologie", "Klinik für Urologie", 1),
)  # fmt: skip


def _medical_services(
    rows: Sequence[tuple[str, str, str, str, str, float]], *extra: tuple[_Service, float]
) -> _Weighted[_Service]:
    services = [
        (
            _Service(
                Coding(MEDICAL_SPECIALTY, code, display),
                practice or f"Praxis für {display}",
                Coding(SPECIALIST_QUALIFICATION, qualification, qualification_display),
            ),
            weight,
        )
        for code, display, qualification, qualification_display, practice, weight in rows
    ]
    return _Weighted.of([*extra, *services])


_PRACTICE_SERVICES = _medical_services(_PRACTICE_ROWS, (_GENERAL_PRACTICE, 36))
_HOSPITAL_SERVICES = _medical_services(_HOSPITAL_ROWS)


def _services(*services: tuple[_Service, float]) -> _Weighted[_Service]:
    return _Weighted.of(services)


def _plain(system: str, code: str, display: str, practice: str) -> _Service:
    return _Service(Coding(system, code, display), practice)


_DENTAL_SERVICES = _services(
    (_plain(MEDICAL_SPECIALTY, "MZKH", "Zahnmedizin", "Zahnarztpraxis"), 80),
    (_plain(MEDICAL_SPECIALTY, "ORAL", "Oralchirurgie", "Praxis für Oralchirurgie"), 6),
    (_plain(MEDICAL_SPECIALTY, "KIEF", "Kieferorthopädie", "Praxis für Kieferorthopädie"), 10),
    (_plain(MEDICAL_SPECIALTY, "PARO", "Parodontologie", "Praxis für Parodontologie"), 4),
)
_PHARMACY_SERVICES = _services(
    (
        _Service(
            Coding(PHARMACY_TYPE, "offizin-apotheke", "Offizin-Apotheke"),
            "Apotheke",
            specialties=(
                (Coding(PHARMACY_SPECIALTY, "10", "Handverkauf"), 1.0),
                (Coding(PHARMACY_SPECIALTY, "20", "Nacht- und Notdienst"), 0.3),
                (Coding(PHARMACY_SPECIALTY, "30", "Botendienst"), 0.5),
                (_VACCINATION, 0.2),
            ),
        ),
        1,
    ),
)
_PSYCHOTHERAPY_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "PST", "Psychotherapie", "Praxis für Psychotherapie"), 1)
)
_CARE_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "PFL", "Pflege und Betreuung", "Pflegedienst"), 3),
    (_plain(NON_MEDICAL_SPECIALTY, "ALT", "Altenpflege", "Seniorenpflege"), 2),
)
_ERGO_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "ERG", "Ergotherapie", "Praxis für Ergotherapie"), 1)
)
_SPEECH_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "SPR", "Sprachtherapie", "Praxis für Logopädie"), 1)
)
_PODIATRY_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "POD", "Podologie", "Podologische Praxis"), 1)
)


@dataclass(frozen=True, slots=True)
class _Profession:
    """A PractitionerProfessionOID with how its members are named and identified."""

    qualification: Coding
    telematik_id: str  # format with {region} and {serial}
    titles: _Weighted[str]  # name prefix; "" for none
    workplace: str  # name of a workplace without an organisation: "<workplace> <person>"
    domain: str  # homeserver label of members without an organisation
    services: _Weighted[_Service] | None = None  # Facharzt qualifications, physicians only


def _titles(*pairs: tuple[str, float]) -> _Weighted[str]:
    return _Weighted.of(pairs)


_NO_TITLE = _titles(("", 1))


def _profession(
    code: str,
    display: str,
    telematik_id: str,
    workplace: str,
    domain: str,
    titles: _Weighted[str] = _NO_TITLE,
    services: _Weighted[_Service] | None = None,
) -> _Profession:
    coding = Coding(PRACTITIONER_PROFESSION, code, display)
    return _Profession(coding, telematik_id, titles, workplace, domain, services)


# TelematikID patterns per card issuer (gemILF_Pflege_VZD, Tabelle_TID_Mapping): BÄK HBA 1-1…,
# BZÄK 2-1…, pharmacists 3-<kammer>.3…, psychotherapists 4-1…, eGBR HBA 10-67.<profession>…
PHYSICIAN = _profession(
    "1.2.276.0.76.4.30", "Ärztin/Arzt", "1-1.{region}.{serial}", "Praxis", "aerzte",
    _titles(("Dr. med.", 52), ("Prof. Dr. med.", 3), ("Dr.", 5), ("", 40)),
    _PRACTICE_SERVICES,
)  # fmt: skip
DENTIST = _profession(
    "1.2.276.0.76.4.31", "Zahnärztin/Zahnarzt", "2-1.{region}.{serial}", "Zahnarztpraxis",
    "zahnaerzte", _titles(("Dr. med. dent.", 50), ("Dr.", 5), ("", 45)),
)  # fmt: skip
PHARMACIST = _profession(
    "1.2.276.0.76.4.32", "Apotheker/-in", "3-{region}.3.{serial}", "Apotheke", "apotheken",
    _titles(("Dr. rer. nat.", 8), ("", 92)),
)  # fmt: skip
PSYCHOTHERAPIST = _profession(
    "1.2.276.0.76.4.46", "Psychologische/-r Psychotherapeut/-in", "4-1.{region}.{serial}",
    "Psychotherapeutische Praxis", "psychotherapie", _titles(("Dr. phil.", 12), ("", 88)),
)  # fmt: skip
CHILD_PSYCHOTHERAPIST = _profession(
    "1.2.276.0.76.4.47", "Kinder- und Jugendlichenpsychotherapeut/-in", "4-1.{region}.{serial}",
    "Psychotherapeutische Praxis", "psychotherapie", _titles(("Dr. phil.", 8), ("", 92)),
)  # fmt: skip
NURSE = _profession(
    "1.2.276.0.76.4.232",
    "Gesundheits- und Krankenpfleger/-in, Gesundheits- und Kinderkrankenpfleger/-in",
    "10-67.232.{serial}", "Pflegedienst", "pflege",
)  # fmt: skip
GERIATRIC_NURSE = _profession(
    "1.2.276.0.76.4.233", "Altenpfleger/-in", "10-67.233.{serial}", "Pflegedienst", "pflege"
)
CARE_PROFESSIONAL = _profession(
    "1.2.276.0.76.4.234", "Pflegefachfrauen und Pflegefachmänner", "10-67.234.{serial}",
    "Pflegedienst", "pflege",
)  # fmt: skip
MIDWIFE = _profession(
    "1.2.276.0.76.4.235", "Hebamme", "10-67.235.{serial}", "Hebammenpraxis", "gesundheitsberufe"
)
PHYSIOTHERAPIST = _profession(
    "1.2.276.0.76.4.236", "Physiotherapeut/-in", "10-67.236.{serial}", "Physiotherapie",
    "gesundheitsberufe",
)  # fmt: skip
OCCUPATIONAL_THERAPIST = _profession(
    "1.2.276.0.76.4.274", "Ergotherapeut/-in", "10-67.274.{serial}", "Ergotherapie",
    "gesundheitsberufe",
)  # fmt: skip
SPEECH_THERAPIST = _profession(
    "1.2.276.0.76.4.275", "Logopäde/Logopädin", "10-67.275.{serial}", "Logopädie",
    "gesundheitsberufe",
)  # fmt: skip
PODIATRIST = _profession(
    "1.2.276.0.76.4.276", "Podologe/Podologin", "10-67.276.{serial}", "Podologie",
    "gesundheitsberufe",
)  # fmt: skip

_PROFESSIONS = _Weighted.of(
    [
        (PHYSICIAN, 50), (DENTIST, 14), (PHARMACIST, 10), (PSYCHOTHERAPIST, 8),
        (CHILD_PSYCHOTHERAPIST, 2), (CARE_PROFESSIONAL, 5), (NURSE, 3), (GERIATRIC_NURSE, 2),
        (PHYSIOTHERAPIST, 3), (MIDWIFE, 1.5), (OCCUPATIONAL_THERAPIST, 1),
        (SPEECH_THERAPIST, 0.7), (PODIATRIST, 0.5),
    ]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Person:
    given: tuple[str, ...]
    family: str
    gender: str
    prefix: str  # "" for none

    @property
    def text(self) -> str:
        """``Dr. med. Anna Maria Schäfer``."""
        given = " ".join(self.given)
        return f"{self.prefix} {given} {self.family}" if self.prefix else f"{given} {self.family}"


def _person(draw: _Draw, titles: _Weighted[str]) -> _Person:
    female = draw.chance(0.52)
    names = FEMALE_GIVEN_NAMES if female else MALE_GIVEN_NAMES
    given = (draw.pick(names), draw.pick(names)) if draw.chance(0.15) else (draw.pick(names),)
    if len(given) == 2 and given[0] == given[1]:
        given = given[:1]
    gender = "female" if female else "male"
    return _Person(given, draw.pick(FAMILY_NAMES), gender, draw.weighted(titles))


# An organisation's name and the stem of its homeserver domain ("praxis-schaefer").
Namer = Callable[[_Draw, City, _Service], tuple[str, str]]


def _physician_practice(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    person = _person(draw, PHYSICIAN.titles)
    family = _SLUGS[person.family]
    roll = draw.random()
    if roll < 0.40:
        return f"Praxis {person.text}", f"praxis-{family}"
    if roll < 0.75:
        return f"{service.practice} {person.text}", f"praxis-{family}"
    if roll < 0.92:
        partner = draw.pick(FAMILY_NAMES)
        name = f"Gemeinschaftspraxis {person.family} & {partner}"
        return name, f"praxis-{family}-{_SLUGS[partner]}"
    landmark = draw.pick(_LANDMARKS)
    return f"MVZ am {landmark} {city.name}", f"mvz-{city.slug}"


def _dental_practice(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    person = _person(draw, DENTIST.titles)
    family = _SLUGS[person.family]
    roll = draw.random()
    if roll < 0.45:
        return f"{service.practice} {person.family}", f"zahnarzt-{family}"
    if roll < 0.85:
        return f"{service.practice} {person.text}", f"zahnarzt-{family}"
    landmark = draw.pick(_LANDMARKS)
    return f"Zahnärzte am {landmark}", f"zahnaerzte-{_SLUGS[landmark]}-{city.slug}"


def _pharmacy(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    roll = draw.random()
    if roll < 0.6:
        emblem = draw.pick(_PHARMACY_EMBLEMS)
        stem = f"{_SLUGS[emblem]}-apotheke"
        if roll < 0.35:
            return f"{emblem}-Apotheke", stem
        return f"{emblem}-Apotheke {city.name}", f"{stem}-{city.slug}"
    landmark = draw.pick(_LANDMARKS)
    stem = f"apotheke-am-{_SLUGS[landmark]}"
    if roll < 0.8:
        return f"Apotheke am {landmark}", stem
    return f"Apotheke am {landmark} {city.name}", f"{stem}-{city.slug}"


def _hospital(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    if draw.chance(0.3):
        quarter = draw.pick(_QUARTERS)
        return f"Klinikum {city.name} {quarter}", f"klinikum-{city.slug}-{_SLUGS[quarter]}"
    base = draw.pick(_HOSPITAL_NAMES)
    return f"{base} {city.name}", f"{_SLUGS[base]}-{city.slug}"


def _personal_practice(profession: _Profession, label: str) -> Namer:
    """Names like ``Praxis für Psychotherapie Dr. phil. Jana Weiß`` / ``Ergotherapie Weiß``."""

    def name(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
        person = _person(draw, profession.titles)
        stem = f"{label}-{_SLUGS[person.family]}"
        if draw.chance(0.5):
            return f"{service.practice} {person.text}", stem
        return f"{profession.workplace} {person.family}", stem

    return name


def _care_service(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    roll = draw.random()
    if roll < 0.4:
        family = draw.pick(FAMILY_NAMES)
        return f"Pflegedienst {family}", f"pflegedienst-{_SLUGS[family]}"
    if roll < 0.7:
        return f"Ambulanter Pflegedienst {city.name}", f"pflegedienst-{city.slug}"
    if roll < 0.85:
        return f"Diakoniestation {city.name}", f"diakonie-{city.slug}"
    landmark = draw.pick(_LANDMARKS)
    return f"Seniorenzentrum am {landmark}", f"seniorenzentrum-{_SLUGS[landmark]}-{city.slug}"


# Opening hours: (day, start, end) rows, one availableTime each (daysOfWeek max 1 in the profile).
_Hours = tuple[tuple[str, str, str], ...]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _hours(start: str, end: str, *extra: tuple[str, str, str]) -> _Hours:
    return (*((day, start, end) for day in _WEEKDAYS), *extra)


_PRACTICE_HOURS: tuple[_Hours, ...] = (
    _hours("08:00:00", "18:00:00"),
    _hours("07:30:00", "17:00:00"),
    _hours("08:00:00", "12:00:00"),
    _hours("09:00:00", "19:00:00"),
)
_PHARMACY_HOURS: tuple[_Hours, ...] = (
    _hours("08:00:00", "18:30:00", ("sat", "09:00:00", "13:00:00")),
    _hours("08:30:00", "19:00:00", ("sat", "09:00:00", "14:00:00")),
    _hours("08:00:00", "20:00:00", ("sat", "08:00:00", "20:00:00")),
)
_CLOSED_ON_HOLIDAYS = "An Feiertagen geschlossen"


@dataclass(frozen=True, slots=True)
class _OrganizationKind:
    """An OrganizationProfessionOID with how such organisations are named and staffed."""

    type: Coding
    telematik_id: str  # format with {region}, {serial} and {check}
    name: Namer
    services: _Weighted[_Service]
    staff: _Weighted[_Profession]
    endpoints: tuple[tuple[str, str], ...]  # (Endpoint.name prefix, MXID localpart)
    hours: tuple[_Hours, ...] = ()
    hospital: bool = False  # HealthcareService named after the department


def _org_type(code: str, display: str) -> Coding:
    return Coding(ORGANIZATION_PROFESSION, code, display)


def _staff(*pairs: tuple[_Profession, float]) -> _Weighted[_Profession]:
    return _Weighted.of(pairs)


_PRACTICE_DESKS = (("Empfang", "empfang"), ("Praxisteam", "praxisteam"), ("Anmeldung", "anmeldung"))
_THERAPY_DESKS = (("Praxis", "praxis"), ("Terminvergabe", "termine"))
_CARE_DESKS = (("Pflegedienstleitung", "pdl"), ("Büro", "buero"), ("Einsatzplanung", "planung"))

# TelematikID patterns of SMC-Bs: KV 1-20<region>…, KZV 2-2…, pharmacies 3-<kammer>.2…,
# DKTIG 5-2-<IK>, eGBR 10-67.<organisation OID>.
PHYSICIAN_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.50", "Betriebsstätte Arzt"),
    telematik_id="1-20{region}{serial}",
    name=_physician_practice,
    services=_PRACTICE_SERVICES,
    staff=_staff((PHYSICIAN, 1)),
    endpoints=_PRACTICE_DESKS,
    hours=_PRACTICE_HOURS,
)
DENTAL_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.51", "Zahnarztpraxis"),
    telematik_id="2-2.{region}.{serial}",
    name=_dental_practice,
    services=_DENTAL_SERVICES,
    staff=_staff((DENTIST, 1)),
    endpoints=_PRACTICE_DESKS,
    hours=_PRACTICE_HOURS,
)
PHARMACY = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.54", "Öffentliche Apotheke"),
    telematik_id="3-{region}.2.{serial}.{check}",
    name=_pharmacy,
    services=_PHARMACY_SERVICES,
    staff=_staff((PHARMACIST, 1)),
    endpoints=(("Apothekenteam", "team"), ("Bestellung", "bestellung"), ("Beratung", "beratung")),
    hours=_PHARMACY_HOURS,
)
HOSPITAL = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.53", "Krankenhaus"),
    telematik_id="5-2-26{serial}",
    name=_hospital,
    services=_HOSPITAL_SERVICES,
    staff=_staff((PHYSICIAN, 6), (NURSE, 2), (CARE_PROFESSIONAL, 2), (PHARMACIST, 0.3)),
    endpoints=(
        ("Patientenaufnahme", "aufnahme"),
        ("Sekretariat", "sekretariat"),
        ("Stationsleitung", "station"),
    ),
    hospital=True,
)
PSYCHOTHERAPY_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.52", "Betriebsstätte Psychotherapeut"),
    telematik_id="1-20{region}{serial}",
    name=_personal_practice(PSYCHOTHERAPIST, "psychotherapie"),
    services=_PSYCHOTHERAPY_SERVICES,
    staff=_staff((PSYCHOTHERAPIST, 4), (CHILD_PSYCHOTHERAPIST, 1)),
    endpoints=_THERAPY_DESKS,
    hours=_PRACTICE_HOURS,
)
CARE_SERVICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.245", "Betriebsstätte Gesundheits-, Kranken- und Altenpflege"),
    telematik_id="10-67.245.{serial}",
    name=_care_service,
    services=_CARE_SERVICES,
    staff=_staff((CARE_PROFESSIONAL, 3), (NURSE, 2), (GERIATRIC_NURSE, 2)),
    endpoints=_CARE_DESKS,
)
OCCUPATIONAL_THERAPY_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.278", "Ergotherapiepraxis"),
    telematik_id="10-67.278.{serial}",
    name=_personal_practice(OCCUPATIONAL_THERAPIST, "ergotherapie"),
    services=_ERGO_SERVICES,
    staff=_staff((OCCUPATIONAL_THERAPIST, 1)),
    endpoints=_THERAPY_DESKS,
    hours=_PRACTICE_HOURS,
)
SPEECH_THERAPY_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.279", "Logopaedische Praxis"),
    telematik_id="10-67.279.{serial}",
    name=_personal_practice(SPEECH_THERAPIST, "logopaedie"),
    services=_SPEECH_SERVICES,
    staff=_staff((SPEECH_THERAPIST, 1)),
    endpoints=_THERAPY_DESKS,
    hours=_PRACTICE_HOURS,
)
PODIATRY_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.280", "Podologiepraxis"),
    telematik_id="10-67.280.{serial}",
    name=_personal_practice(PODIATRIST, "podologie"),
    services=_PODIATRY_SERVICES,
    staff=_staff((PODIATRIST, 1)),
    endpoints=_THERAPY_DESKS,
    hours=_PRACTICE_HOURS,
)
_ORGANIZATION_KINDS = _Weighted.of(
    [
        (PHYSICIAN_PRACTICE, 44), (DENTAL_PRACTICE, 20), (PHARMACY, 18), (HOSPITAL, 3),
        (PSYCHOTHERAPY_PRACTICE, 7), (CARE_SERVICE, 4), (OCCUPATIONAL_THERAPY_PRACTICE, 2),
        (SPEECH_THERAPY_PRACTICE, 1.5), (PODIATRY_PRACTICE, 1.5),
    ]
)  # fmt: skip


# --- the generator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How many units :func:`generate` makes; :meth:`total` is the number of resources."""

    organizations: int
    practitioners: int

    def __post_init__(self) -> None:
        if self.organizations < 0 or self.practitioners < 0:
            raise ValueError(f"counts must not be negative: {self}")

    def total(self) -> int:
        """Exactly the number of resources :func:`generate` yields for this shape."""
        return RESOURCES_PER_UNIT * (self.organizations + self.practitioners)


def generate(organizations: int, practitioners: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Stream ``Shape(organizations, practitioners).total()`` resources (module docstring).

    Raises:
        ValueError: a count is negative (at once, not on the first ``next``).
    """
    shape = Shape(organizations, practitioners)
    return _Generator(shape, seed).run()


@dataclass(frozen=True, slots=True)
class _Place:
    """A street address with coordinates and a phone number."""

    city: City
    line: str
    postal_code: str
    text: str
    latitude: float
    longitude: float
    phone: str


def _place(draw: _Draw, city: City) -> _Place:
    line = f"{draw.pick(STREETS)} {draw.number(1, 120)}"
    if draw.chance(0.08):
        line += draw.pick("abc")
    postal_code = f"{draw.number(city.first_postal_code, city.last_postal_code):05d}"
    radius = city.radius
    latitude = round(city.latitude + (draw.random() - 0.5) * radius, 5)
    longitude = round(city.longitude + (draw.random() - 0.5) * radius * 1.6, 5)
    digits = max(5, 11 - len(city.dialling_code))
    phone = f"{city.dialling_code} {draw.number(2 * 10 ** (digits - 1), 10**digits - 1)}"
    text = f"{line}, {postal_code} {city.name}, {city.state}, DE"
    return _Place(city, line, postal_code, text, latitude, longitude, phone)


@dataclass(frozen=True, slots=True)
class _Organization:
    """What practitioners employed by an organisation need of it."""

    number: str
    name: str
    domain: str
    kind: _OrganizationKind
    service: _Service
    place: _Place


@dataclass(frozen=True, slots=True)
class _Serials:
    """Distinct serial numbers: an affine permutation of 0 … modulus-1 (seeded)."""

    multiplier: int
    offset: int
    modulus: int
    digits: int

    @classmethod
    def for_count(cls, count: int, draw: _Draw) -> _Serials:
        digits = max(_SERIAL_DIGITS, len(str(count)))
        modulus = 10**digits
        multiplier = int(draw.random() * modulus) | 1
        if multiplier % 5 == 0:  # coprime with 10**digits, so the map is a bijection
            multiplier += 2
        return cls(multiplier, int(draw.random() * modulus), modulus, digits)

    def __call__(self, index: int) -> str:
        return f"{(self.multiplier * index + self.offset) % self.modulus:0{self.digits}d}"


def _meta(profile: str, origin: str = "ldap") -> dict[str, Any]:
    return {"tag": [{"system": ORIGIN, "code": origin}], "profile": [profile]}


def _reference(target: str) -> dict[str, str]:
    return {"reference": target}


def _address(place: _Place) -> dict[str, Any]:
    city = place.city
    return {
        "use": "work",
        "type": "postal",
        "text": place.text,
        "line": [place.line],
        "city": city.name,
        "state": city.state,
        "postalCode": place.postal_code,
        "country": "DE",
    }


def _location(
    location_id: str, name: str, place: _Place, organization: str | None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": location_id,
        "meta": _meta(LOCATION_PROFILE),
        "name": name,
        "address": _address(place),
        "position": {"longitude": place.longitude, "latitude": place.latitude},
    }
    if organization is not None:
        resource["managingOrganization"] = _reference(organization)
    return resource


def _endpoint(endpoint_id: str, name: str, mxid: str, organization: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "meta": _meta(ENDPOINT_PROFILE, "owner"),
        "status": "active",
        "connectionType": {
            "system": CONNECTION_TYPE,
            "code": "tim",
            "display": "TI-Messenger Endpoint",
        },
        "name": name,
        "payloadType": [
            {
                "coding": [
                    {"system": PAYLOAD_TYPE, "code": "tim-chat", "display": "TI-Messenger chat"}
                ]
            }
        ],
        "address": f"matrix:u/{mxid}",
    }
    if organization is not None:
        resource["managingOrganization"] = _reference(organization)
    return resource


def _available_time(hours: _Hours) -> list[dict[str, Any]]:
    return [
        {"daysOfWeek": [day], "availableStartTime": start, "availableEndTime": end}
        for day, start, end in hours
    ]


class _Generator:
    """One run of :func:`generate`."""

    def __init__(self, shape: Shape, seed: int) -> None:
        self.shape = shape
        self.draw = _Draw(seed)
        self.organization_serials = _Serials.for_count(shape.organizations, self.draw)
        self.practitioner_serials = _Serials.for_count(shape.practitioners, self.draw)
        self.recent: list[_Organization] = []

    def run(self) -> Iterator[dict[str, Any]]:
        """Interleave the units in proportion, an organisation first."""
        organizations, practitioners = self.shape.organizations, self.shape.practitioners
        made_organizations = made_practitioners = 0
        while made_organizations < organizations or made_practitioners < practitioners:
            if made_practitioners >= practitioners or (
                made_organizations < organizations
                and made_organizations * practitioners <= made_practitioners * organizations
            ):
                made_organizations += 1
                yield from self.organization_unit(made_organizations)
            else:
                made_practitioners += 1
                yield from self.practitioner_unit(made_practitioners)

    # --- organisations ---

    def organization_unit(self, n: int) -> tuple[Resource, Resource, Resource, Resource]:
        """Organization, Location, Endpoint, HealthcareService of organisation ``n``."""
        draw = self.draw
        kind = draw.weighted(_ORGANIZATION_KINDS)
        city = draw.weighted(_CITY_TABLE)
        service = draw.weighted(kind.services)
        name, stem = kind.name(draw, city, service)
        number = f"{n:06d}"
        domain = f"{stem[:40].rstrip('-')}-{n}.{MATRIX_DOMAIN}"
        organization = _Organization(number, name, domain, kind, service, _place(draw, city))
        self._remember(n, organization)
        telematik_id = kind.telematik_id.format(
            region=city.region,
            serial=self.organization_serials(n - 1),
            check=f"{draw.number(10, 99)}.{draw.number(100, 999)}",
        )
        active = not draw.chance(INACTIVE_SHARE)
        return (
            self._organization(organization, telematik_id, active),
            _location(f"loc-{number}", name, organization.place, f"Organization/org-{number}"),
            self._organization_endpoint(organization),
            self._healthcare_service(organization, telematik_id, active),
        )

    def _remember(self, n: int, organization: _Organization) -> None:
        """Keep the last organisations, the candidate employers, in a ring buffer."""
        recent = self.recent
        if len(recent) < _RECENT_ORGANIZATIONS:
            recent.append(organization)
        else:
            recent[n % _RECENT_ORGANIZATIONS] = organization

    @staticmethod
    def _organization(
        organization: _Organization, telematik_id: str, active: bool
    ) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": f"org-{organization.number}",
            "meta": _meta(ORGANIZATION_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": active,
            "type": [{"coding": [organization.kind.type.json()]}],
            "name": organization.name,
            "address": [_address(organization.place)],
        }

    def _organization_endpoint(self, organization: _Organization) -> dict[str, Any]:
        desk, localpart = self.draw.pick(organization.kind.endpoints)
        number = organization.number
        return _endpoint(
            f"ep-org-{number}",
            f"{desk} {organization.name}",
            f"{localpart}:{organization.domain}",
            f"Organization/org-{number}",
        )

    def _healthcare_service(
        self, organization: _Organization, telematik_id: str, active: bool
    ) -> dict[str, Any]:
        number = organization.number
        kind, service = organization.kind, organization.service
        resource: dict[str, Any] = {
            "resourceType": "HealthcareService",
            "id": f"hs-{number}",
            "meta": _meta(HEALTHCARE_SERVICE_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": active,
            "providedBy": _reference(f"Organization/org-{number}"),
            "type": [{"coding": [service.type.json()]}],
            "location": [_reference(f"Location/loc-{number}")],
            "name": service.practice if kind.hospital else organization.name,
            "telecom": [{"system": "phone", "value": organization.place.phone, "use": "work"}],
            "endpoint": [_reference(f"Endpoint/ep-org-{number}")],
        }
        specialties = self._specialties(service)
        if specialties:
            resource["specialty"] = specialties
        if kind.hours:
            resource["availableTime"] = _available_time(self.draw.pick(kind.hours))
            resource["availabilityExceptions"] = _CLOSED_ON_HOLIDAYS
        return resource

    def _specialties(self, service: _Service) -> list[dict[str, Any]]:
        chance = self.draw.chance
        return [
            {"coding": [coding.json()]}
            for coding, probability in service.specialties
            if chance(probability)
        ]

    # --- practitioners ---

    def practitioner_unit(self, n: int) -> tuple[Resource, Resource, Resource, Resource]:
        """Practitioner, Location, Endpoint, PractitionerRole of practitioner ``n``."""
        draw = self.draw
        employer = self._employer()
        if employer is None:
            profession = draw.weighted(_PROFESSIONS)
            place = _place(draw, draw.weighted(_CITY_TABLE))
            services = profession.services
            service = draw.weighted(services) if services is not None else None
        else:
            profession = draw.weighted(employer.kind.staff)
            place = employer.place
            service = employer.service
        person = _person(draw, profession.titles)
        number = f"{n:06d}"
        organization = None if employer is None else f"Organization/org-{employer.number}"
        practitioner = self._practitioner(n, person, profession, service, place)
        workplace = f"{profession.workplace} {person.text}" if employer is None else employer.name
        return (
            practitioner,
            _location(f"loc-pract-{number}", workplace, place, organization),
            self._practitioner_endpoint(n, person, profession, employer),
            self._role(number, practitioner["active"], employer),
        )

    def _employer(self) -> _Organization | None:
        recent = self.recent
        if not recent or not self.draw.chance(EMPLOYED_SHARE):
            return None
        return self.draw.pick(recent)

    def _practitioner(
        self,
        n: int,
        person: _Person,
        profession: _Profession,
        service: _Service | None,
        place: _Place,
    ) -> dict[str, Any]:
        draw = self.draw
        telematik_id = profession.telematik_id.format(
            region=place.city.region, serial=self.practitioner_serials(n - 1)
        )
        name: dict[str, Any] = {
            "use": "official",
            "text": person.text,
            "family": person.family,
            "given": list(person.given),
        }
        if person.prefix:
            name["prefix"] = [person.prefix]
        qualification = [{"code": {"coding": [profession.qualification.json()]}}]
        specialist = service.qualification if service is not None else None
        if profession is PHYSICIAN and specialist is not None and draw.chance(0.9):
            qualification.append({"code": {"coding": [specialist.json()]}})
        birth = f"{draw.number(1950, 1997)}-{draw.number(1, 12):02d}-{draw.number(1, 28):02d}"
        return {
            "resourceType": "Practitioner",
            "id": f"pract-{n:06d}",
            "meta": _meta(PRACTITIONER_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": not draw.chance(INACTIVE_SHARE),
            "name": [name],
            "gender": person.gender,
            "birthDate": birth,
            "qualification": qualification,
        }

    @staticmethod
    def _practitioner_endpoint(
        n: int, person: _Person, profession: _Profession, employer: _Organization | None
    ) -> dict[str, Any]:
        localpart = f"{_SLUGS[person.given[0]]}.{_SLUGS[person.family]}.{n}"
        if employer is None:
            domain, organization = f"{profession.domain}.{MATRIX_DOMAIN}", None
        else:
            domain, organization = employer.domain, f"Organization/org-{employer.number}"
        return _endpoint(f"ep-pract-{n:06d}", person.text, f"{localpart}:{domain}", organization)

    @staticmethod
    def _role(number: str, active: bool, employer: _Organization | None) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "id": f"role-{number}",
            "meta": _meta(PRACTITIONER_ROLE_PROFILE),
            "active": active,
            "practitioner": _reference(f"Practitioner/pract-{number}"),
            "location": [_reference(f"Location/loc-pract-{number}")],
            "endpoint": [_reference(f"Endpoint/ep-pract-{number}")],
        }
        if employer is not None:
            resource["organization"] = _reference(f"Organization/org-{employer.number}")
            resource["healthcareService"] = [_reference(f"HealthcareService/hs-{employer.number}")]
        return resource
