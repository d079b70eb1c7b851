"""Fixtures: each simulator in-process on an ephemeral 127.0.0.1 port, plus a recording webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from simulators import bigcommerce, sagex3
from simulators.control import BigCommerceControl, SageX3Control
from simulators.receiver import Receiver

STORES = [
    {
        "hash": "usstore01",
        "preset": 0,
        "access_token": "tok-us",
        "client_secret": "secret-us-0123456789abcdef",
        "orders": 60,
    },
    {
        "hash": "frstore02",
        "preset": 1,
        "access_token": "tok-fr",
        "client_secret": "secret-fr-0123456789abcdef",
        "orders": 60,
    },
    {
        "hash": "jpstore03",
        "preset": 2,
        "access_token": "tok-jp",
        "client_secret": "secret-jp-0123456789abcdef",
        "orders": 60,
    },
    {
        "hash": "ukstore04",
        "preset": 3,
        "access_token": "tok-uk",
        "client_secret": "secret-uk-0123456789abcdef",
        "orders": 60,
    },
]


@dataclass
class BC:
    server: Any
    base_url: str
    ctl: BigCommerceControl
    http: requests.Session

    @property
    def app(self) -> bigcommerce.BigCommerceSim:
        return self.server.app

    def api(self, store_hash: str = "usstore01") -> str:
        return f"{self.base_url}/stores/{store_hash}"

    def get(self, store_hash: str, path: str, token: str | None = None, **params: Any) -> requests.Response:
        token = token or next(s["access_token"] for s in STORES if s["hash"] == store_hash)
        return self.http.get(
            self.api(store_hash) + path, headers={"X-Auth-Token": token}, params=params, timeout=5
        )


@dataclass
class X3:
    server: Any
    base_url: str
    ctl: SageX3Control
    http: requests.Session

    @property
    def app(self) -> sagex3.SageX3Sim:
        return self.server.app

    @property
    def url(self) -> str:
        return f"{self.base_url}/api1/x3/erp/SEED/GACCENTRY"


@pytest.fixture
def bc() -> Iterator[BC]:
    server, base_url = bigcommerce.start_in_thread(
        stores=[dict(s) for s in STORES], seed=7, webhooks={"compression": 1e-6, "timeout_s": 2.0}
    )
    ctl = BigCommerceControl(base_url)
    http = requests.Session()
    try:
        yield BC(server, base_url, ctl, http)
    finally:
        http.close()
        ctl.session.close()
        server.stop()


@pytest.fixture
def x3() -> Iterator[X3]:
    server, base_url = sagex3.start_in_thread(
        config={"users": {"admin": "s3cret"}, "closed_periods": ["2026-10"], "sites": {"FR011": "FR10"}}
    )
    ctl = SageX3Control(base_url)
    http = requests.Session()
    http.auth = ("admin", "s3cret")
    try:
        yield X3(server, base_url, ctl, http)
    finally:
        http.close()
        ctl.session.close()
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver.start()
    try:
        yield rec
    finally:
        rec.stop()
