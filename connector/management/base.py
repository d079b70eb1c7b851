"""What every management command of the connector shares: bad input ends in one plain line and exit code 2.

* ``usage_error(...)``: a :class:`CommandError` with ``returncode=2`` (the shell convention for a misused command,
  as argparse uses it); Django prints ``CommandError: <message>`` without a traceback.
* :class:`ConnectorCommand`: argument errors (unknown option, ``--limit abc``) raise that same error when the
  command is called from code, and print one line and exit 2 from the shell, instead of argparse's usage block.
* Parsers for dates, date ranges, positive IDs and tenant slugs that answer with such an error.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, datetime, time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from connector.models import Tenant

USAGE = 2  # exit code of a command given bad input
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE)


class ConnectorCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        prog = parser.prog

        def error(message: str):
            text = f"{message} (see: {prog} --help)"
            if parser.called_from_command_line:
                # Parsing happens before Django's own CommandError handling: print the line and exit here.
                sys.stderr.write(f"CommandError: {text}\n")
                sys.exit(USAGE)
            raise usage_error(text)

        parser.error = error  # type: ignore[method-assign]
        return parser


def positive_id(value: str) -> int:
    """argparse ``type=`` for an order (or other) ID: a whole number above zero."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ID: {value!r} (IDs are whole numbers like 250)") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"not an ID: {value!r} (IDs are above zero)")
    return number


def parse_day(value: str, option: str) -> date:
    """``YYYY-MM-DD`` or a usage error naming the option: ``--from 2026-13-01`` is not a date."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise usage_error(f"{option} {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-03-31") from None


def parse_moment(value: str, option: str, *, end: bool) -> datetime:
    """A date (the start of that day, or its end when ``end``) or an ISO 8601 datetime, aware in the current zone.

    A bare date is read as a day first: Python reads ``2026-03-31`` as a datetime at midnight, which would make
    ``--until 2026-03-31`` leave out that very day.
    """
    if DAY.fullmatch(value.strip()):
        parsed = datetime.combine(parse_day(value.strip(), option), time.max if end else time.min)
    else:
        try:
            moment = parse_datetime(value.strip())
        except ValueError:
            moment = None
        if moment is None:
            raise usage_error(
                f"{option} {value!r} is not a date or datetime: use YYYY-MM-DD or ISO 8601 "
                "(2026-03-31T18:00:00+01:00)"
            )
        parsed = moment
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def check_range(start, end, first: str, last: str) -> None:
    if start is not None and end is not None and end < start:
        raise usage_error(f"{last} ({end:%Y-%m-%d}) is before {first} ({start:%Y-%m-%d})")


def tenant_by_slug(slug: str, *related: str) -> Tenant:
    """The tenant with that slug, or a usage error listing the slugs there are."""
    found = Tenant.objects.select_related(*related).filter(slug=slug).first()
    if found is None:
        known = list(Tenant.objects.order_by("slug").values_list("slug", flat=True)[:20])
        hint = f"; tenants: {', '.join(known)}" if known else "; there is no tenant yet (configure_tenant)"
        raise usage_error(f"No tenant {slug!r}{hint}")
    return found
