"""The tenant's directory: departments and users, generated eagerly because they are small."""

from __future__ import annotations

import random
from typing import Any

from migrator.sandbox.names import DEPARTMENTS, DOMAIN, guid, local_part, person

JOB_TITLES = ("Beleidsmedewerker", "Senior adviseur", "Teamleider", "Jurist", "Controller", "Communicatieadviseur", "Projectleider", "Secretaresse")
USER_DEFAULT_SELECT = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
    "preferredLanguage", "surname", "userPrincipalName", "id",
)


def build_users(seed: int, main_department_size: int, other_department_size: int = 4) -> list[dict[str, Any]]:
    """The first department holds `main_department_size` people; the others a handful each, so that
    filtering by department has something to leave out."""
    rng = random.Random(f"users-{seed}")
    users: list[dict[str, Any]] = []
    seen: set[str] = set()
    sizes = [main_department_size] + [other_department_size] * (len(DEPARTMENTS) - 1)
    for department, size in zip(DEPARTMENTS, sizes):
        for _ in range(size):
            given, family = person(rng)
            local = local_part(given, family)
            while local in seen:
                local = f"{local}{rng.randint(2, 99)}"
            seen.add(local)
            upn = f"{local}@{DOMAIN}"
            users.append({
                "id": guid(rng),
                "displayName": f"{given} {family}",
                "givenName": given,
                "surname": family,
                "userPrincipalName": upn,
                "mail": upn,
                "department": department,
                "jobTitle": rng.choice(JOB_TITLES),
                "officeLocation": rng.choice(("Den Haag", "Utrecht", "Zwolle", "Berlin")),
                "preferredLanguage": "nl-NL",
                "businessPhones": [f"+31 70 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"],
                "mobilePhone": None,
                "accountEnabled": True,
                "usageLocation": "NL",
            })
    return users
