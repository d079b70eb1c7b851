"""Test a BigCommerce store connection step by step, read-only: reachable, token accepted, the scopes we need.

BigCommerce has no endpoint that lists a token's scopes, so each scope is tried with one harmless read and a 403
reported in words (docs/reference/bigcommerce.md §2, §5, §8):

* orders, read (``store_v2_orders_read_only``): ``GET /v2/orders?limit=1``;
* channels, read (``store_channel_settings_read_only``): ``GET /v3/channels``, whose names are then listed;
* webhooks: ``GET /v3/hooks``. BigCommerce needs no extra scope to manage hooks ("None required … the default scope
  of an API account"), so a listing that works means registering ours will too; creating one is not tried here.

A 401 means the token is refused (later steps are skipped); a connection error or 5xx means the store was not
reached; a 404 on the first call means the store hash is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.errors import AuthenticationError, IntegrationError, NotFoundError

from .client import BigCommerceClient
from .types import Channel


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class StoreCheck:
    steps: list[Step] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)


SCOPES: tuple[tuple[str, str], ...] = (
    ("orders", "Orders: read (store_v2_orders_read_only)"),
    ("channels", "Channels: read (store_channel_settings_read_only)"),
    ("hooks", "Webhooks: list and register (default scope of the API account)"),
)


def check_store(client: BigCommerceClient) -> StoreCheck:
    """Every step in plain words; never raises for a BigCommerce answer."""
    check = StoreCheck()
    host = client.config.api_base_url
    calls: dict[str, Callable[[], Any]] = {
        "orders": lambda: client.list_orders(limit=1, page=1),
        "channels": client.list_channels,
        "hooks": client.list_hooks,
    }
    for index, (key, label) in enumerate(SCOPES):
        try:
            answer = calls[key]()
        except AuthenticationError as exc:
            if index == 0 and exc.status_code == 401:
                check.steps.append(
                    Step("Store reachable", True, f"{host} answered for store {client.config.store_hash}")
                )
                check.steps.append(
                    Step("Access token accepted", False, f"BigCommerce refused the token: {exc.message}")
                )
                return check
            if index == 0:
                check.steps[:0] = _reached(client)
            check.steps.append(
                Step(label, False, f"missing: the API account lacks this scope ({exc.message})")
            )
            continue
        except NotFoundError as exc:
            if index == 0:
                check.steps.append(
                    Step(
                        "Store reachable",
                        False,
                        f"no store {client.config.store_hash} there: check the store hash ({exc.message})",
                    )
                )
                return check
            check.steps.append(Step(label, False, exc.message))
            continue
        except IntegrationError as exc:
            if index == 0:
                check.steps.append(Step("Store reachable", False, exc.message))
                return check
            check.steps.append(Step(label, False, exc.message))
            continue
        if index == 0:
            check.steps[:0] = _reached(client)
        check.steps.append(Step(label, True, _describe(key, answer)))
        if key == "channels":
            check.channels = list(answer)
    return check


def _reached(client: BigCommerceClient) -> list[Step]:
    return [
        Step(
            "Store reachable",
            True,
            f"{client.config.api_base_url} answered for store {client.config.store_hash}",
        ),
        Step("Access token accepted", True, "BigCommerce accepted the token"),
    ]


def _describe(key: str, answer: Any) -> str:
    if key == "orders":
        return "orders can be read" + ("" if answer else " (the store has no orders yet)")
    if key == "channels":
        names = ", ".join(f"{c.id} {c.name}" for c in answer) or "none"
        return f"{len(answer)} channel(s): {names}"
    return f"{len(answer)} webhook(s) registered by this API account"
