"""The kinds of outbound request, as data: which tenant setting turns each on, which new inbound messages
call for it, and whether Meta may safely receive it twice (what a retry after a crash may do)."""

from collections.abc import Callable
from dataclasses import dataclass

from workers.events import Message

MARK_READ = "mark_read"
ORDER_CONFIRMATION = "order_confirmation"
MEDIA = "media"


@dataclass(frozen=True)
class Kind:
    name: str
    setting: str  # the whatsapp_business_settings column that turns it on for a tenant
    wanted: Callable[[Message], bool]  # for which new inbound message
    # True: a second call does no harm (marking read again, downloading again), so an attempt that died
    # mid-call is simply made again. False (a send): it is never made twice; see outbound/intents.py.
    repeatable: bool


def _has_media(message: Message) -> bool:
    return message.content.media is not None and bool(message.content.media.id)


def _is_order(message: Message) -> bool:
    # A new order message is a new order: the store inserts both in one transaction, keyed by the wamid.
    return message.content.order is not None


KINDS = (
    Kind(MARK_READ, "mark_read_on_receipt", lambda message: True, repeatable=True),
    Kind(ORDER_CONFIRMATION, "confirm_orders", _is_order, repeatable=False),
    Kind(MEDIA, "download_media", _has_media, repeatable=True),
)
BY_NAME = {kind.name: kind for kind in KINDS}
SETTINGS = tuple(kind.setting for kind in KINDS)
