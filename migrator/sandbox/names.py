"""Invented names and words for the synthetic tenant. Any likeness to a real person is chance."""

from __future__ import annotations

import random
import uuid

GIVEN = (
    "Anna", "Bram", "Chloë", "Daan", "Eva", "Femke", "Gijs", "Hanna", "Ivo", "Jet", "Kees", "Lotte", "Maarten",
    "Noor", "Otto", "Pien", "Ruben", "Sanne", "Thijs", "Uma", "Vera", "Wouter", "Yara", "Zoë", "Jürgen", "Aylin",
    "Bilal", "Søren", "Ilse", "Joost",
)
FAMILY = (
    "de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "de Boer", "Bos", "Peters", "van Dijk",
    "Hendriks", "van den Berg", "Dekker", "Brouwer", "Yılmaz", "Schäfer", "Müller", "Çelik", "van der Linden",
)
TOPICS = (
    "begroting 2027", "aanbesteding", "persbericht", "auditbevindingen", "beleidsnota", "teamuitje", "kwartaalcijfers",
    "Wob-verzoek", "huisvesting", "digitale toegankelijkheid", "informatiebeveiliging", "ketenoverleg",
)
DEPARTMENTS = ("Financiën", "Juridische Zaken", "Communicatie", "Informatievoorziening", "Personeel en Organisatie")
DOMAIN = "contoso-overheid.example"
TENANT_ID = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def guid(rng: random.Random) -> str:
    """A GUID drawn from `rng`, so the same seed gives the same ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(GIVEN), rng.choice(FAMILY)


def local_part(given: str, family: str) -> str:
    plain = (given + "." + family.replace(" ", "")).lower()
    return plain.translate(str.maketrans("ëüöäçıøşé", "euoacioSe".lower()))
