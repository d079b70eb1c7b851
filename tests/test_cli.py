"""Command-line behaviour shared by the management commands: progress bars, summaries, bad input (exit code 2)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, ManagementUtility, call_command

from accounting.models import Posting
from connector.management.progress import Progress, wanted
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def bc(monkeypatch):
    fake = FakeBigCommerce()
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda t: fake)
    return fake


@pytest.fixture
def x3(monkeypatch):
    fake = FakeX3()
    monkeypatch.setattr("connector.clients.x3_client", lambda t: fake)
    return fake


# --- The progress helper -------------------------------------------------------------------------------------------


def test_progress_is_on_for_a_terminal_and_off_otherwise_unless_asked():
    assert wanted(None, Terminal()) is True
    assert wanted(None, io.StringIO()) is False
    assert wanted(True, io.StringIO()) is True  # --progress
    assert wanted(False, Terminal()) is False  # --no-progress


def test_a_bar_shows_n_of_n_or_counts_up_and_notes_do_not_tear_it():
    stream = Terminal()
    progress = Progress(stream, enabled=True)
    assert list(progress.bar([1, 2, 3], desc="Replaying", unit="order")) == [1, 2, 3]
    assert "Replaying" in stream.getvalue() and "3/3" in stream.getvalue()

    counting = Terminal()
    progress = Progress(counting, enabled=True)
    assert list(progress.bar(iter(range(4)), desc="Reading", unit="order")) == [0, 1, 2, 3]
    assert re.search(r"Reading: 4 orders", counting.getvalue()), counting.getvalue()
    assert "/" not in counting.getvalue().split("Reading:")[-1].split("[")[0]  # no total while counting up


def test_a_disabled_bar_writes_nothing():
    stream = Terminal()
    progress = Progress(stream, enabled=False)
    assert list(progress.bar([1, 2], desc="Replaying", unit="order")) == [1, 2]
    progress.note("order 1: created (posted)")
    assert stream.getvalue() == "order 1: created (posted)\n"


# --- replay_orders -------------------------------------------------------------------------------------------------


def _order_with_refund(bc):
    bc.put_order(order_json(250, status_id=14))
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    bc.put_order(order_json(251, status_id=7))  # pending: waits for payment


def test_replay_summary_counts_each_kind_and_what_this_run_posted(tenant, bc, x3):
    _order_with_refund(bc)
    out = io.StringIO()
    call_command("replay_orders", "--tenant", "acme", "250", "251", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "Replay done. 2 orders (" in text
    heads = r"entries +posted now +already posted +failed +skipped +not posted yet"
    assert re.search(heads, text), text
    assert re.search(r"^  orders +1 +0 +0 +0 +1$", text, re.MULTILINE), text  # 250 posted now, 251 waiting
    assert re.search(r"^  refunds +1 +0 +0 +0 +0$", text, re.MULTILINE)
    assert re.search(r"^  total +2 +0 +0 +0 +1$", text, re.MULTILINE)
    assert [e.reference for e in x3.entries] == ["BC-abc123-250", "BC-abc123-250-R1"]

    # Again: nothing new to post, both already in the books.
    again = io.StringIO()
    call_command("replay_orders", "--tenant", "acme", "250", stdout=again, stderr=io.StringIO())
    assert re.search(r"^  orders +0 +1 +0 +0 +0$", again.getvalue(), re.MULTILINE), again.getvalue()
    assert re.search(r"^  refunds +0 +1 +0 +0 +0$", again.getvalue(), re.MULTILINE)
    assert len(x3.entries) == 2


def test_replay_summary_counts_failed_and_skipped_entries(tenant, bc, x3):
    bc.put_order(order_json(260, channel_id=99))  # no mapping for channel 99
    bc.put_order(order_json(261, status_id=5))  # cancelled before it was ever posted
    out = io.StringIO()
    call_command(
        "replay_orders", "--tenant", "acme", "260", "261", "404", stdout=out, stderr=(err := io.StringIO())
    )
    assert "order 404: order 404 not found" in err.getvalue()
    assert "3 orders" in out.getvalue() and "1 could not be read from BigCommerce" in out.getvalue()
    assert Posting.objects.get(order_id=260).status == Posting.Status.NEEDS_MAPPING
    assert Posting.objects.get(order_id=261).status == Posting.Status.SKIPPED
    assert re.search(r"^  orders +0 +0 +1 +1 +0$", out.getvalue(), re.MULTILINE), out.getvalue()


def test_replay_shows_progress_on_stderr_only_when_asked_or_on_a_terminal(tenant, bc, x3):
    for order_id in (250, 251, 252):
        bc.put_order(order_json(order_id))
    quiet, out = io.StringIO(), io.StringIO()
    call_command("replay_orders", "--tenant", "acme", "250", "251", "252", stdout=out, stderr=quiet)
    assert quiet.getvalue() == ""  # not a terminal
    shown = io.StringIO()
    call_command(
        "replay_orders", "--tenant", "acme", "250", "251", "252", "--progress", stdout=out, stderr=shown
    )
    assert "Replaying" in shown.getvalue() and "3/3" in shown.getvalue()
    assert "Replaying" not in out.getvalue()
    terminal = Terminal()
    call_command("replay_orders", "--tenant", "acme", "250", "--no-progress", stdout=out, stderr=terminal)
    assert terminal.getvalue() == ""


def test_range_replay_counts_up_while_paging_then_shows_n_of_n(tenant, bc, x3):
    for order_id in (250, 251, 252):
        bc.put_order(order_json(order_id))
    bc.orders[252]["date_modified"] = "Sun, 05 Apr 2026 10:00:00 +0000"
    err, out = io.StringIO(), io.StringIO()
    call_command(
        "replay_orders",
        "--tenant",
        "acme",
        "--since",
        "2026-03-01",
        "--until",
        "2026-03-31",
        "--progress",
        stdout=out,
        stderr=err,
    )
    bars = err.getvalue()
    assert re.search(r"Reading orders from BigCommerce: 2 orders", bars), bars
    assert "Replaying" in bars and "2/2" in bars
    assert bars.index("Reading orders") < bars.index("Replaying")
    assert "order 252" not in out.getvalue() and "Replay done. 2 orders" in out.getvalue()


def test_until_a_date_takes_in_that_whole_day(tenant, bc, x3):
    bc.put_order(order_json(250))
    bc.orders[250]["date_modified"] = "Tue, 31 Mar 2026 18:00:00 +0000"
    out = io.StringIO()
    call_command(
        "replay_orders", "--tenant", "acme", "--since", "2026-03-01", "--until", "2026-03-31", stdout=out
    )
    assert "order 250: created" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tenant", "acme", "--since", "2026-13-01"), "--since '2026-13-01' is not a date"),
        (("--tenant", "acme", "--since", "2026-03-01T25:00"), "--since '2026-03-01T25:00' is not a date"),
        (("--tenant", "acme", "--since", "yesterday"), "--since 'yesterday' is not a date"),
        (
            ("--tenant", "acme", "--since", "2026-04-01", "--until", "2026-03-01"),
            "--until (2026-03-01) is before --since (2026-04-01)",
        ),
        (("--tenant", "nobody", "250"), "No tenant 'nobody'; tenants: acme"),
        (("--tenant", "acme", "abc"), "not an ID: 'abc'"),
        (("--tenant", "acme", "-5"), "not an ID: '-5'"),
        (("--tenant", "acme", "0"), "not an ID: '0'"),
        (("--tenant", "acme", "250", "--bogus"), "unrecognized arguments: --bogus"),
        (("--tenant", "acme"), "Give either order IDs or --since"),
        (("--tenant", "acme", "250", "--until", "2026-03-01"), "--until needs --since"),
        (("--tenant", "acme", "250", "--progress", "--no-progress"), "not allowed with argument"),
    ],
)
def test_replay_bad_input_is_one_line_and_exit_code_2(tenant, args, message):
    with pytest.raises(CommandError, match=re.escape(message)) as raised:
        call_command("replay_orders", *args)
    assert raised.value.returncode == 2
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("verify_audit", ("--tenant", "nobody"), "No tenant 'nobody'"),
        ("verify_audit", ("--bogus",), "unrecognized arguments"),
        ("refresh_accounts", ("--tenant", "nobody"), "No tenant 'nobody'"),
        ("register_webhooks", ("--tenant", "nobody", "--base-url", "https://x.example.com"), "No tenant"),
        ("register_webhooks", ("--tenant", "acme", "--base-url", "x.example.com"), "https://"),
        ("configure_tenant", ("/nonexistent/tenant.toml",), "does not exist"),
        ("sweep", ("--bogus",), "unrecognized arguments"),
        ("send_alerts", ("--bogus",), "unrecognized arguments"),
    ],
)
def test_other_commands_answer_bad_input_with_exit_code_2(tenant, command, args, message):
    with pytest.raises(CommandError, match=re.escape(message)) as raised:
        call_command(command, *args)
    assert raised.value.returncode == 2


def test_from_the_shell_bad_input_prints_one_line_and_exits_2(tenant, capsys):
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "replay_orders", "--tenant", "acme", "-5"]).execute()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "CommandError: argument order_ids: not an ID: '-5' (IDs are above zero) (see: manage.py replay_orders --help)\n"
    )
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "report", "--tenant", "nobody"]).execute()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "CommandError: No tenant 'nobody'; tenants: acme"


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--from", "2026-13-01"],
        ["replay_orders", "--tenant", "acme", "--bogus"],
    ],
)
def test_a_real_process_exits_2_without_a_traceback(args, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "connector.settings_test"}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("CommandError: ")


def test_queued_replay_says_how_many_orders_went_to_the_workers(tenant, bc, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "connector.management.commands.replay_orders.enqueue_order_sync", lambda t, o: queued.append(o)
    )
    out = io.StringIO()
    call_command("replay_orders", "--tenant", "acme", "250", "251", "250", "--queue", stdout=out)
    assert queued == [250, 251]  # each order once
    assert "Replay queued: 2 orders for the workers." in out.getvalue()
    assert "posted now" not in out.getvalue()  # nothing was done here yet


def test_verify_audit_shows_a_bar_per_tenant_when_asked(tenant):
    err, out = io.StringIO(), io.StringIO()
    call_command("verify_audit", "--progress", stdout=out, stderr=err)
    assert "Verifying audit chains" in err.getvalue() and "1/1" in err.getvalue()
    assert "Audit chain intact" in out.getvalue() and "Verifying" not in out.getvalue()
    quiet = io.StringIO()
    call_command("verify_audit", stdout=out, stderr=quiet)
    assert quiet.getvalue() == ""
