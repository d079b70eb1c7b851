"""What happened to a posting and what a person should do, in plain words (admin presentation only).

The status and X3's own message stay as recorded; this module only words them for the failure queue's reason
column and the banner on a posting that needs a person.
"""

from __future__ import annotations

import dataclasses

from .models import Posting

S = Posting.Status
NEEDS_A_PERSON = (S.NEEDS_ATTENTION, S.NEEDS_MAPPING, S.NEEDS_REAUTH)


@dataclasses.dataclass(frozen=True)
class Explanation:
    headline: str
    happened: str
    to_do: str
    level: str  # "error" (a person must act) or "wait" (the connector is on it)


def _mapping_words(posting: Posting, mapping_inactive: bool) -> str:
    if mapping_inactive:
        return f"The GL mapping for channel {posting.channel_id} exists but is switched off (inactive)."
    return f"There is no GL mapping for channel {posting.channel_id}."


def reason(posting: Posting, *, mapping_inactive: bool = False) -> str:
    """One line for the failure queue: plain words first, then X3's own message when there is one."""
    status = posting.status
    if status == S.NEEDS_ATTENTION:
        if posting.last_error.startswith("Gave up"):
            return f"Sage X3 kept failing and the retries ran out. {posting.last_error}"
        if posting.attempts:  # an answer from X3 (planning problems such as an over-refund never reach it)
            return f"Sage X3 refused the entry: {posting.last_error or '(no message)'}"
        return posting.last_error or "Needs a look"
    if status == S.NEEDS_MAPPING:
        return _mapping_words(posting, mapping_inactive)
    if status == S.NEEDS_REAUTH:
        return "The Sage X3 authorization has expired or was revoked: reconnect the tenant."
    if status == S.UNKNOWN:
        return "Sending was interrupted; checking in Sage X3 by reference before anything is re-sent."
    if status == S.RETRY:
        return f"Temporary error, will retry: {posting.last_error}" if posting.last_error else "Will retry"
    if status == S.WAITING:
        return "The order is not confirmed (paid) in BigCommerce yet."
    if status == S.IN_SUMMARY:
        if posting.summary_id is None:
            return (
                f"Goes to Sage X3 in the daily summary of {posting.gl_date}, built once that day is closed."
            )
        return "Carried to Sage X3 by its daily summary (see the summary for its status)."
    return ""


def explain(posting: Posting, *, mapping_inactive: bool = False) -> Explanation | None:
    """The banner for a posting that needs a person (or is being checked); None when nothing is to be said."""
    status = posting.status
    if status == S.NEEDS_ATTENTION:
        return Explanation(
            headline="Sage X3 refused this entry — it is not in the books"
            if posting.attempts
            else "This entry needs a look — it is not in the books",
            happened=reason(posting),
            to_do=(
                "Correct the cause — in Sage X3 (for example open the period, or create the account) or in the "
                "channel's GL mapping. Then select this posting in the list and use “Re-post order”: it re-reads "
                "the order and rebuilds the entry from the current mapping. “Retry now” sends the same lines "
                "again, so use it only when the cause was on the Sage X3 side."
            ),
            level="error",
        )
    if status == S.NEEDS_MAPPING:
        return Explanation(
            headline="Not posted: the order's sales channel has no active GL mapping",
            happened=_mapping_words(posting, mapping_inactive),
            to_do=(
                f"{'Activate' if mapping_inactive else 'Add'} the mapping for channel {posting.channel_id} "
                "(Channel mappings), then select this posting in the list and use “Re-post order”."
            ),
            level="error",
        )
    if status == S.NEEDS_REAUTH:
        return Explanation(
            headline="Waiting for Sage X3 re-authorization",
            happened="The tenant's Sage X3 authorization has expired or was revoked, so nothing can be sent.",
            to_do=(
                "Open the tenant and use “Connect to Sage X3”. Postings waiting for re-authorization are sent "
                "again by themselves once it is connected; nothing is lost."
            ),
            level="error",
        )
    if status == S.UNKNOWN:
        return Explanation(
            headline="Outcome unknown — the connector is checking Sage X3",
            happened=(
                f"Sending was interrupted ({posting.last_error or 'no answer'}); Sage X3 may have recorded it."
            ),
            to_do=(
                "Nothing for now: before anything is re-sent, Sage X3 is asked for reference "
                f"{posting.reference or '(not set)'}, so the entry cannot be posted twice."
            ),
            level="wait",
        )
    return None
