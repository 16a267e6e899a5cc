"""Meta's delivery statuses as data: their order, the column keeping each one's time, and its daily counter.

The store, the analytics and the models all read this one table.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusRule:
    status: str  # Meta's `statuses[].status`
    rank: int  # a message's status only ever moves to a higher rank
    time_column: str  # the whatsapp_messages column that keeps the first time this status was seen
    counter: str  # the whatsapp_analytics column counting first sightings of this status


STATUS_RULES = (
    StatusRule("sent", 1, "sent_at", "messages_sent"),
    StatusRule("delivered", 2, "delivered_at", "messages_delivered"),
    StatusRule("read", 3, "read_at", "messages_read"),
    # A voice message the customer played: after read (it was opened to be played).
    StatusRule("played", 4, "played_at", "messages_played"),
    # The highest rank, so nothing moves a failed message again.
    StatusRule("failed", 5, "failed_at", "messages_failed"),
)
STATUSES = {rule.status: rule for rule in STATUS_RULES}
SENT = "sent"
