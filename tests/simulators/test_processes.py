"""Both simulators run as separate processes (``python -m simulators.<name>``) and answer over HTTP."""

from __future__ import annotations

import requests

from simulators.control import BigCommerceControl, SageX3Control, spawn


def test_simulators_run_as_processes() -> None:
    bc_proc, bc_info = spawn("bigcommerce", "--stores", "2", "--orders", "5", "--seed", "3")
    x3_proc, x3_info = spawn("sagex3", "--user", "api:pw", "--folder", "SEED", "--closed-period", "2026-10")
    try:
        assert [s["orders"] for s in bc_info["stores"]] == [5, 5]
        store = bc_info["stores"][0]
        r = requests.get(
            f"{store['api_base']}/v2/orders", headers={"X-Auth-Token": store["access_token"]}, timeout=5
        )
        assert r.status_code == 200 and len(r.json()) == 5
        assert BigCommerceControl(bc_info["base_url"]).health()["ok"] is True

        assert x3_info["users"] == ["api"]
        r = requests.get(
            x3_info["api1"], params={"representation": "GACCENTRY.$query"}, auth=("api", "pw"), timeout=5
        )
        assert r.json() == {"$resources": [], "$links": {}}
        assert SageX3Control(x3_info["base_url"]).config()["closed_periods"] == ["2026-10"]
    finally:
        for proc in (bc_proc, x3_proc):
            proc.terminate()
            proc.wait(5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()
