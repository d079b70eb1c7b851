"""A whole running system on one machine: both simulators plus the real connector (web server and workers).

Used by the demo (`manage.py demo`), the end-to-end tests and the benchmarks, so all three exercise exactly what a
user runs: separate processes talking HTTP, the connector's own settings, its database and its queue broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .control import BigCommerceControl, SageX3Control, spawn
from .sagex3 import ACCOUNT_NAMES, DEFAULT_CHART

ROOT = Path(__file__).resolve().parent.parent
TENANT = "demo"
STORE_HASH = "demostore1"
ACCESS_TOKEN = "demo-access-token-0123456789abcdef"  # noqa: S105 - simulator credentials
METRICS_TOKEN = "demo-metrics-token"  # noqa: S105 - /metrics of the stack's connector
CLIENT_SECRET = "demo-client-secret-0123456789abcdefghijklmnopqrstuv"  # noqa: S105
X3_USER, X3_PASSWORD = "WEBSVC", "demo-x3-password"
# The GraphQL methods (x3_method="graphql_jwt" / "graphql_oauth2"): the connected application and the OAuth2 client
# registered on the simulated X3 and typed into the tenant's connection.
X3_METHODS = ("rest_basic", "graphql_jwt", "graphql_oauth2", "soap_basic")
X3_APP_CLIENT_ID = "demo-connected-app"
X3_APP_SECRET = "demo-connected-app-secret-0123456789abcdef"  # noqa: S105
X3_OAUTH_CLIENT_ID = "demo-oauth-client"
X3_OAUTH_CLIENT_SECRET = "demo-oauth-client-secret-0123456789"  # noqa: S105

# Three storefront channels, each on its own receivable, revenue and shipping accounts.
CHANNELS = [
    {
        "channel_id": 1,
        "name": "Main storefront",
        "receivable_account": "411000",
        "revenue_account": "707000",
        "shipping_account": "708500",
        "tax_account": "445710",
        "discount_account": "709000",
        "cogs_account": "607000",
        "inventory_account": "370000",
    },
    {
        "channel_id": 2,
        "name": "Wholesale storefront",
        "receivable_account": "411100",
        "revenue_account": "707100",
        "shipping_account": "708510",
        "tax_account": "445710",
        "discount_account": "709000",
        "cogs_account": "607000",
        "inventory_account": "370000",
    },
    {
        "channel_id": 3,
        "name": "Outlet storefront",
        "receivable_account": "467000",
        "revenue_account": "707200",
        "shipping_account": "708520",
        "tax_account": "445711",
        "discount_account": "709000",
        "cogs_account": "607000",
        "inventory_account": "370000",
    },
]
EXTRA_ACCOUNTS = ["707100", "707200", "708510", "708520", "709100"]
EXTRA_ACCOUNT_NAMES = {
    "707100": "Sales of goods - wholesale",
    "707200": "Sales of goods - outlet",
    "708510": "Shipping billed - wholesale",
    "708520": "Shipping billed - outlet",
    "709100": "Rebates on sales - wholesale",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def x3_method_fields(x3_url: str, x3_method: str = "rest_basic") -> dict[str, Any]:
    """The tenant's extra X3 connection fields for a method, against the simulated X3 at ``x3_url``."""
    if x3_method == "rest_basic":
        return {}
    if x3_method == "soap_basic":  # the same user and password; pool alias = the folder, publication GAS
        return {"method": x3_method}
    if x3_method == "graphql_jwt":  # GraphQL URL and audience default to {server_url}/xtrem/api
        return {
            "method": x3_method,
            "app_client_id": X3_APP_CLIENT_ID,
            "app_secret": X3_APP_SECRET,
            "app_user": X3_USER,
        }
    if x3_method == "graphql_oauth2":  # GraphQL goes to {x3_url}/v1/service/SEED/api once connected
        return {
            "method": x3_method,
            "oauth_client_id": X3_OAUTH_CLIENT_ID,
            "oauth_client_secret": X3_OAUTH_CLIENT_SECRET,
            "oauth_authorise_url": f"{x3_url}/v1/token/authorise",
            "oauth_token_url": f"{x3_url}/v1/token",
        }
    raise ValueError(f"x3_method must be one of {', '.join(X3_METHODS)}, not {x3_method!r}")


def x3_simulator_auth(x3_url: str, connector_url: str) -> dict[str, Any]:
    """Simulator config registering the connected application and the OAuth2 client (redirect URI: the
    connector's callback) that :func:`x3_method_fields` uses."""
    return {
        "connected_apps": {
            X3_APP_CLIENT_ID: {"secret": X3_APP_SECRET, "user": X3_USER, "url": f"{x3_url}/xtrem/api"}
        },
        "oauth": {
            "clients": {
                X3_OAUTH_CLIENT_ID: {
                    "secret": X3_OAUTH_CLIENT_SECRET,
                    "redirect_uris": [f"{connector_url}/x3/oauth/callback/"],
                }
            }
        },
    }


def tenant_document(
    bc_api_base: str, x3_url: str, *, slug: str = TENANT, x3_method: str = "rest_basic"
) -> dict[str, Any]:
    doc = {
        "tenant": {
            "slug": slug,
            "name": "Demo merchant",
            "rounding_account": "658000",
            "refund_account": "709100",
        },
        "bigcommerce": {
            "store_hash": STORE_HASH,
            "access_token": ACCESS_TOKEN,
            "client_id": "demo-client",
            "client_secret": CLIENT_SECRET,
            "api_base_url": bc_api_base,
            "accept_standard_webhooks": True,
            "accept_custom_header": True,
            "webhook_header_name": "X-Webhook-Secret",
            "webhook_header_value": "demo-header-secret-0123456789",
        },
        "x3": {
            "server_url": x3_url,
            "folder": "SEED",
            "username": X3_USER,
            "password": X3_PASSWORD,
            "entry_type": "ODG",
            "journal": "VEN",
            "site": "FR011",
            "timeout_seconds": 5,
        },
        "channels": CHANNELS,
    }
    doc["x3"].update(x3_method_fields(x3_url, x3_method))
    return doc


@dataclass
class Stack:
    bc: BigCommerceControl
    x3: SageX3Control
    bc_url: str
    x3_url: str
    connector_url: str
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run a management command against the stack's database and broker; returns its output."""
        result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def settle(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 60,
        what: str = "the work",
        describe: Callable[[], str] = lambda: "",
    ) -> None:
        """Wait until ``predicate()`` holds, running the sweep now and then as the cluster's schedule would (every
        few minutes in production; tests and the demo cannot wait that long)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                log = (self.log_dir / "connector.log").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"{what} did not settle in {timeout:.0f} s. {describe()}\n{log}")
            self.manage("sweep")
            time.sleep(0.5)

    def entries(self, reference: str | None = None) -> list[dict[str, Any]]:
        return self.x3.entries(reference=reference)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for proc in self.processes:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        self.processes.clear()
        for handle in self.files:
            handle.close()
        self.files.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_stack(
    *,
    database_url: str,
    redis_url: str = "",
    workers: int = 2,
    web_workers: int = 2,
    log_dir: Path | None = None,
    migrate: bool = True,
    extra_env: dict[str, str] | None = None,
    bc_args: tuple[str, ...] = (),
    x3_method: str = "rest_basic",
    cluster: bool = True,
) -> Stack:
    """Start both simulators and the connector (``manage.py serve``) on free ports, configured for one tenant.

    The connector uses ``database_url`` (and ``redis_url`` as its broker when given), short retry delays so faults
    resolve in seconds, and the tenant ``demo`` with three storefront channels mapped to distinct accounts.

    ``x3_method`` picks the tenant's X3 connection: ``rest_basic`` (api1), ``soap_basic`` (SOAP web services),
    ``graphql_jwt`` (connected application, posts at once) or ``graphql_oauth2`` (cloud gateway: postings wait for re-authorization until someone runs
    "Connect to Sage X3", e.g. ``tests/e2e/test_x3_graphql_e2e.py``).

    ``cluster=False`` starts only the web server (``serve --no-cluster``): the caller runs ``manage.py qcluster``
    itself with ``stack.env``, e.g. to kill and restart the workers (``bench/faults.py``).
    """
    x3_method_fields("", x3_method)  # an unknown method fails before anything starts
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="connector-stack-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    stack: Stack | None = None
    try:
        bc_proc, bc_banner = spawn("bigcommerce", "--stores", "0", *bc_args)
        processes.append(bc_proc)
        x3_proc, x3_banner = spawn("sagex3", "--folder", "SEED", "--user", f"{X3_USER}:{X3_PASSWORD}")
        processes.append(x3_proc)
        bc = BigCommerceControl(bc_banner["base_url"])
        x3 = SageX3Control(x3_banner["base_url"])
        bc.create_store(
            hash=STORE_HASH,
            access_token=ACCESS_TOKEN,
            client_secret=CLIENT_SECRET,
            channels=3,
            currency="USD",
            tax_rate="0.08",
            orders=0,
        )
        x3.configure(
            chart=sorted(set(DEFAULT_CHART) | set(EXTRA_ACCOUNTS)),
            account_names={**ACCOUNT_NAMES, **EXTRA_ACCOUNT_NAMES},
            closed_periods=[],
        )

        port = free_port()
        if x3_method != "rest_basic":
            x3.configure(**x3_simulator_auth(x3_banner["base_url"], f"http://127.0.0.1:{port}"))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_SETTINGS_MODULE", "Q_"))},
            "DJANGO_SETTINGS_MODULE": "connector.settings",
            "CONNECTOR_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "Q_CLUSTER_NAME": f"stack-{uuid.uuid4().hex[:8]}",
            "Q_WORKERS": str(workers),
            "Q_POLL": "0.05",
            "UNKNOWN_OUTCOME_DELAY_SECONDS": "1",
            "RETRY_BASE_SECONDS": "1",
            "RETRY_CAP_SECONDS": "2",
            "STALE_AFTER_SECONDS": "15",
            "LOG_LEVEL": "WARNING",
            "METRICS_TOKEN": METRICS_TOKEN,
            # each stack its own metrics directory, so two stacks never add up (or delete) each other's counts
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "prometheus"),
            **(extra_env or {}),
        }
        stack = Stack(
            bc=bc,
            x3=x3,
            bc_url=bc_banner["base_url"],
            x3_url=x3_banner["base_url"],
            connector_url=f"http://127.0.0.1:{port}",
            env=env,
            log_dir=log_dir,
            processes=processes,
        )
        if migrate:
            stack.manage("migrate", "--noinput")
        doc = log_dir / "tenant.json"
        doc.write_text(json.dumps(tenant_document(bc_banner["base_url"], stack.x3_url, x3_method=x3_method)))
        stack.manage("configure_tenant", str(doc))
        if x3_method != "graphql_oauth2":  # OAuth2 reads X3 only once someone has connected
            stack.manage(
                "refresh_accounts", "--tenant", TENANT
            )  # the chart of accounts, for names and checks
        log = (log_dir / "connector.log").open("w")
        stack.files.append(log)
        processes.append(
            subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--web-workers",
                    str(web_workers),
                    *([] if cluster else ["--no-cluster"]),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for(lambda: _healthy(stack.connector_url), timeout=60, what="the connector to answer /healthz")
        stack.manage("register_webhooks", "--tenant", TENANT, "--base-url", stack.connector_url)
        return stack
    except BaseException:
        if stack is not None:
            for handle in stack.files:
                handle.close()
        for proc in processes:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        raise


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
