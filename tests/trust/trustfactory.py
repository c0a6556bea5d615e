"""Synthetic trust-directory material in the published formats, for the trust tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Sequence

PROJECT = Path(__file__).resolve().parents[2]
SHARED_MSSANTE = PROJECT.parent / "shared" / "data" / "mssante"

NS = "https://listeblanche.mssante.fr/schema"

EXTRACTION_COLUMNS = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|Civilité d'exercice|"
    "Nom d'exercice|Prénom d'exercice|Catégorie profession|Libellé de catégorie profession|Code Profession|"
    "Libellé Profession|Code savoir-faire|Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION structure BAL|"
    "L3COMPLEMENTDISTRIBUTION structure BAL|L4NUMEROVOIE structure BAL|L4COMPLEMENTNUMEROVOIE structure BAL|"
    "NL4TYPEVOIE structure BAL|L4LIBELLEVOIE structure BAL|L5LIEUDITMENTION structure BAL|"
    "L6LIGNEACHEMINEMENT structure BAL|Code postal structure BAL|Département structure BAL|Pays structure BAL"
).split("|")


def entry_xml(domain: str, operator_dn: str, description: str = "Établissement de test") -> str:
    return (
        "        <Domaine>\n"
        f"            <Nom>{domain}</Nom>\n"
        f"            <Description>{description}</Description>\n"
        f"            <DNCertificatOperateur>{operator_dn}</DNCertificatOperateur>\n"
        "            <ResponsableContact>01 00 00 00 00, contact@example.test</ResponsableContact>\n"
        "            <SupportContact>01 00 00 00 01, support@example.test</SupportContact>\n"
        "            <DateMAJ>2025-03-13T14:54:10Z</DateMAJ>\n"
        "        </Domaine>\n"
    )


def whitelist_xml(entries: Iterable[tuple[str, str]], *, closed: bool = False) -> bytes:
    """A whitelist as the ANS publishes it: no closing root tag unless `closed`."""
    text = (
        f'<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="{NS}">\n'
        "    <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>\n"
        "    <ListeDomaines>\n"
        + "".join(entry_xml(d, dn) for d, dn in entries)
        + "    </ListeDomaines>\n"
        + ("</ListeBlancheMSSante>\n" if closed else "")
    )
    return text.encode()


def operator_dn(host: str, siret: str = "31831002130002") -> str:
    return f"CN={host},OU=3{siret},O=OPERATEUR {host.upper()},ST=Haute-Garonne (31),C=FR"


def extraction_line(values: dict[str, str], columns: Sequence[str] = EXTRACTION_COLUMNS) -> str:
    return "|".join(values.get(column, "") for column in columns)


def mailbox_values(kind: str, address: str, national_id: str = "", profession: str = "", structure: str = "") -> dict[str, str]:
    return {
        "Type de BAL": kind,
        "Adresse BAL": address,
        "Identification nationale PP": national_id,
        "Code Profession": profession,
        "Identification Structure": structure,
        "Nom d'exercice": "NOM",
        "Prénom d'exercice": "Prénom",
        "L4LIBELLEVOIE structure BAL": "rue de la Santé",
        "Pays structure BAL": "FR",
    }


def copy_example(demo_pki: Path, into: Path, with_service: bool = False) -> Path:
    """The example config/ copied beside a generated certs/demo/; returns its relay.toml.

    Unless with_service, relay.toml keeps only its trust_dir line, so that
    tests of the trust directory see no service sections.
    """
    shutil.copytree(PROJECT / "config", into / "config")
    shutil.copytree(demo_pki, into / "certs" / "demo")
    relay_toml = into / "config" / "relay.toml"
    if not with_service:
        relay_toml.write_text('trust_dir = "trust"\n')
    return relay_toml
