"""What happened to a posting and what a person should do, in plain words (admin presentation only).

The status and X3's own message stay as recorded; this module only words them for the failure queue's reason
column and the banner on a posting that needs a person.
"""

from __future__ import annotations

import dataclasses

from .models import Posting
from .planning import MappingProblem, mapping_problem

S = Posting.Status
NEEDS_A_PERSON = (S.NEEDS_ATTENTION, S.NEEDS_MAPPING, S.NEEDS_REAUTH)


@dataclasses.dataclass(frozen=True)
class Explanation:
    headline: str
    happened: str
    to_do: str
    level: str  # "error" (a person must act), "wait" (the connector is on it) or "review" (awaiting approval)


def mapping_state(posting: Posting) -> MappingProblem | None:
    """What is wrong with the channel's mapping now (it may have been fixed since the entry was planned)."""
    return mapping_problem(posting.tenant_id, posting.channel_id, posting.gl_date)


def _mapping_words(posting: Posting, problem: MappingProblem | None) -> str:
    if problem is None:
        return (
            f"The GL mapping for channel {posting.channel_id} is complete now: use “Retry now” to build and post "
            "the entry."
        )
    return problem.happened


_READ = MappingProblem("missing", 0)  # a marker: "read the mapping now"


def reason(posting: Posting, *, problem: MappingProblem | None = _READ) -> str:
    """``problem``: the mapping's problem when the caller has read it already (None: the mapping is fine now)."""
    """One line for the failure queue: plain words first, then X3's own message when there is one."""
    status = posting.status
    if status == S.NEEDS_ATTENTION:
        if posting.last_error.startswith("Gave up"):
            return f"Sage X3 kept failing and the retries ran out. {posting.last_error}"
        if posting.attempts:  # an answer from X3 (planning problems such as an over-refund never reach it)
            return f"Sage X3 refused the entry: {posting.last_error or '(no message)'}"
        return posting.last_error or "Needs a look"
    if status == S.NEEDS_MAPPING:
        return _mapping_words(posting, mapping_state(posting) if problem is _READ else problem)
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


HEADLINES = {
    "missing": "Not posted: the order's sales channel has no GL mapping",
    "inactive": "Not posted: the GL mapping of the order's sales channel is switched off",
    "blank": "Not posted: the GL mapping of the order's sales channel has a blank account",
}


def explain(posting: Posting) -> Explanation | None:
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
                "channel's GL mapping. Then select this posting in the list and use “Retry now”: it rebuilds the "
                "entry from the current order and mapping and sends it again (if an earlier send may have reached "
                "Sage X3, X3 is asked for the reference first and nothing is rebuilt). “Re-post order” re-reads "
                "the order and posts only what is missing."
            ),
            level="error",
        )
    if status == S.NEEDS_MAPPING:
        problem = mapping_state(posting)
        return Explanation(
            headline=HEADLINES[problem.cause]
            if problem
            else "Not posted yet: the GL mapping has been fixed since",
            happened=_mapping_words(posting, problem),
            to_do=problem.to_do
            if problem
            else "Select this posting in the list and use “Retry now”: the entry is built and posted.",
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
    if status == S.AWAITING_APPROVAL:
        why = (
            f"it is flagged for review ({posting.flag_reason})"
            if posting.flagged and posting.flag_reason
            else "this tenant's entries wait for an accountant's approval before they are sent"
        )
        return Explanation(
            headline="Awaiting your approval",
            happened=f"Nothing has been sent to Sage X3 yet: {why}.",
            to_do=(
                "Check the lines below and “What is sent to X3”, the exact request Sage X3 will receive. "
                "“Approve and post” sends it (once, like every entry); “Reject” sends nothing — if the order "
                "changes later, the new entry comes back here for review."
            ),
            level="review",
        )
    if status == S.PENDING:
        return Explanation(
            headline="On its way to Sage X3 — not in the books yet",
            happened="The entry is queued for sending; Sage X3 has not confirmed it yet.",
            to_do=(
                "Nothing: the connector sends it within moments. Reload this page: once Sage X3 has accepted "
                "the entry, the status is Posted, with X3's document number."
            ),
            level="wait",
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
