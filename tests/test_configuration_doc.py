"""docs/configuration.md documents every key `configure_tenant` accepts, and its example file applies as written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import responses

from connector import configuration
from connector.clients import bigcommerce_client
from connector.configuration import apply_document
from tests.conftest import STORE_HASH, order_json

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
SECTION = "### Every key a tenant file accepts"


def keys_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    return text[start : text.index("\n## ", start)]


def documented_keys() -> dict[str, set[str]]:
    """section → the `key` names in the first column of its tables (``**`[x3]`**`` headings start a section)."""
    found: dict[str, set[str]] = {}
    section = ""
    for line in keys_section().splitlines():
        heading = re.match(r"\*\*`\[+([a-z0-9_]+)\]+`\*\*", line)
        if heading:
            section = heading.group(1)
            found.setdefault(section, set())
        elif line.startswith("| ") and section and not line.startswith("| key"):
            first_column = line.split("|")[1]
            found[section] |= set(re.findall(r"`([a-z0-9_]+)`", first_column))
    return found


def test_every_key_configure_tenant_accepts_is_documented():
    documented = documented_keys()
    accepted = {
        "tenant": configuration.TENANT_FIELDS | {"slug"},
        "bigcommerce": configuration.STORE_FIELDS,
        "x3": configuration.X3_FIELDS,
        "alerts": configuration.ALERT_FIELDS,
        "channels": configuration.MAPPING_FIELDS,
    }
    missing = {s: sorted(keys - documented.get(s, set())) for s, keys in accepted.items()}
    assert {s: k for s, k in missing.items() if k} == {}
    unknown = {s: sorted(documented.get(s, set()) - keys) for s, keys in accepted.items()}
    assert {s: k for s, k in unknown.items() if k} == {}  # nothing documented that the loader would refuse


def test_the_check_notices_a_missing_key(monkeypatch):
    monkeypatch.setattr(configuration, "X3_FIELDS", configuration.X3_FIELDS | {"colour"})
    documented = documented_keys()
    assert "colour" in configuration.X3_FIELDS - documented["x3"]


def test_the_example_in_the_doc_applies(db):
    text = keys_section()
    example = text[text.index("```toml") + len("```toml") : text.index("```", text.index("```toml") + 7)]
    tenant, created = apply_document(tomllib.loads(example))
    assert created and tenant.x3.method == "graphql_jwt" and tenant.x3.app_user == "APIUSER"
    assert tenant.bigcommerce.accept_custom_header and tenant.review_policy == "flagged"


def test_api_base_url_is_the_host_only_the_client_adds_stores_hash(tenant):
    tenant.bigcommerce.api_base_url = "https://bc.example.test"
    tenant.bigcommerce.save()
    with responses.RequestsMock() as http:
        http.get(f"https://bc.example.test/stores/{STORE_HASH}/v2/orders/250", json=order_json(250))
        assert bigcommerce_client(tenant).get_order(250).id == 250
    assert "without `/stores/<hash>`" in keys_section()
