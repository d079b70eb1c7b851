"""The README's demo command works end to end (embedded defaults: SQLite + ORM broker)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_posts_the_story_and_stops_cleanly():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "simulators.demo", "--exit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Sage X3 now holds 9 journal entries" in out
    assert "BC-demostore1-100-R1" in out and "-V1" in out  # the refund and the cancellation
    assert "Posted                                9" in out
    assert "Needs a look" not in out
    assert "/admin/" in out

    # The summary explains what it shows.
    # Each X3 entry says what it is and on which channel.
    assert re.search(r"BC-demostore1-100-R1 .* Refund 1 of order 100, Main storefront", out), out
    assert re.search(r"BC-demostore1-\d+-V1 .* Reversal 1 of order \d+, ", out)
    # The reference suffixes, as accounting/planning.py x3_reference writes them.
    assert re.search(r"^  BC-demostore1-<order>-R<n> +a refund: BigCommerce refund n", out, re.MULTILINE)
    assert re.search(r"^  BC-demostore1-<order>-A<n> +an adjustment", out, re.MULTILINE)
    assert re.search(r"^  BC-demostore1-<order>-V<n> +a reversal: the order was cancelled", out, re.MULTILINE)
    # Account codes with the names of the chart of accounts read from X3 (the simulator's chart).
    assert re.search(r"^  411000 +Customers$", out, re.MULTILINE)
    assert re.search(r"^  707100 +Sales of goods - wholesale$", out, re.MULTILINE)
    assert re.search(r"^  411000 +USD +160\.38 +0\.00 +160\.38  Customers$", out, re.MULTILINE)
    # Totals per channel: three storefronts; the refund of 15.12 on the main one.
    assert re.search(r"^  1 Main storefront +4 +175\.50 +-15\.12 +160\.38 USD$", out, re.MULTILINE), out
    assert re.search(r"^  2 Wholesale storefront +2 +75\.60 +0\.00 +75\.60 USD$", out, re.MULTILINE)
    assert re.search(r"^  3 Outlet storefront +3 +37\.26 +0\.00 +37\.26 USD$", out, re.MULTILINE)
    # The duplicate webhooks were deduplicated: more deliveries than events.
    dedup = re.search(r"Deduplicated: (\d+) deliveries -> (\d+) events", out)
    assert dedup and int(dedup[1]) > int(dedup[2]) > 0, out
    # The X3 hiccup: one 503, retried, posted once.
    assert re.search(
        r"Sage X3 hiccup: X3 answered 503 to \w+ \d+ \(BC-demostore1-[\d-]+\w*\); the connector retried and it "
        r"was posted once as ODG-\d+ \(1 entry with that reference in X3",
        out,
    ), out
    # Entries by kind in the report.
    assert re.search(r"^  refunds +1 +0 +0 +0$", out, re.MULTILINE)
    assert re.search(r"^  reversals +1 +0 +0 +0$", out, re.MULTILINE)
    # The admin URL, and (with --exit) that it stops; without --exit it says the admin keeps running.
    assert re.search(r"Admin: http://127\.0\.0\.1:\d+/admin/ .*: stopping now \(--exit\)\.", out)


def test_the_summary_demo_sends_one_entry_per_channel_for_the_day():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "simulators.demo", "--summary", "--exit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "close_summaries --day today" in out
    # one summary per storefront channel (all USD), each in X3 once, carrying the day's entries
    assert "Sage X3 now holds 3 journal entries" in out, out
    rows = re.findall(
        r"^  (BC-demostore1-S\d+) +\d{4}-\d\d-\d\d +(\d) .+? +(\d+) +(\d+) +(\d+) +[\d.-]+ USD  ODG-\d+$",
        out,
        re.MULTILINE,
    )
    assert sorted(channel for _, channel, *_ in rows) == ["1", "2", "3"], out
    counts = {channel: (int(e), int(o), int(n)) for _, channel, e, o, n in rows}
    # channel 1: orders 100, 103 and the order paid later, plus the refund of order 100: 4 entries, 3 orders
    assert counts["1"][:2] == (4, 3), out
    assert all(lines > 0 for _, _, lines in counts.values())
    # the same money per channel as posting order by order (test_demo_posts_the_story_and_stops_cleanly)
    assert re.search(r"^  1 Main storefront +4 +175\.50 +-15\.12 +160\.38 USD$", out, re.MULTILINE), out
    assert re.search(r"^  3 Outlet storefront +3 +37\.26 +0\.00 +37\.26 USD$", out, re.MULTILINE), out
    # which entries each summary carries (in the order the webhooks were processed)
    main = re.search(r"^  BC-demostore1-S\d+: (.*Refund 1 of order 100.*)$", out, re.MULTILINE)
    assert main and sorted(main[1].split(", "))[:2] == ["Order 100", "Order 103"], out
    assert re.search(r"^  BC-demostore1-S\d+: .*Reversal 1 of order 105", out, re.MULTILINE), out
