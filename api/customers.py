"""Customers (whatsapp_contacts: one row per customer, its business-scoped user id and phone number linked as
the workers learn them), and each one's conversation: the messages they sent and were sent, in conversation
order, each with its delivery status."""

from typing import Any

from sqlalchemy import ColumnElement, func, select

from api.pages import page
from api.resource import first_or_404, tenant_session, v1
from api.schemas import CustomerOut, CustomerPage, CustomerQuery, MessageOut, MessagePage, PageQuery
from models import WhatsAppContact, WhatsAppMessage

# When a message happened: one seen only by its statuses has no message_at, so its first status's time stands
# in (created_at last: never null, so the sort key always has a value).
AT: ColumnElement[Any] = func.coalesce(
    WhatsAppMessage.message_at,
    WhatsAppMessage.sent_at,
    WhatsAppMessage.delivered_at,
    WhatsAppMessage.read_at,
    WhatsAppMessage.failed_at,
    WhatsAppMessage.created_at,
)


def _customer(customer_id: int) -> WhatsAppContact:
    query = select(WhatsAppContact).where(WhatsAppContact.id == customer_id)
    found: WhatsAppContact = first_or_404(tenant_session().scalar(query), f"customer {customer_id}")
    return found


def _message_out(message: WhatsAppMessage, at: Any) -> MessageOut:
    fields = {name: getattr(message, name) for name in MessageOut.model_fields if name != "at"}
    return MessageOut.model_validate({**fields, "at": at})


@v1.get("/customers")
@v1.input(CustomerQuery, location="query", arg_name="query")
@v1.output(CustomerPage)
def list_customers(query: CustomerQuery) -> dict[str, object]:
    """The tenant's customers, oldest first, or the one with a given wa_id or business-scoped user id."""
    customers = select(WhatsAppContact)
    if query.wa_id is not None:
        customers = customers.where(WhatsAppContact.wa_id == query.wa_id)
    if query.user_id is not None:
        customers = customers.where(WhatsAppContact.user_id == query.user_id)
    found = page(tenant_session(), customers, [WhatsAppContact.id], query.cursor, query.limit)
    return {
        "data": [CustomerOut.model_validate(row) for (row,) in found.rows],
        "next_cursor": found.next_cursor,
    }


@v1.get("/customers/<int:customer_id>")
@v1.output(CustomerOut)
def get_customer(customer_id: int) -> CustomerOut:
    return CustomerOut.model_validate(_customer(customer_id))


@v1.get("/customers/<int:customer_id>/messages")
@v1.input(PageQuery, location="query", arg_name="query")
@v1.output(MessagePage)
def list_messages(customer_id: int, query: PageQuery) -> dict[str, object]:
    """The conversation with a customer, oldest first: what they sent and what the business sent them, each
    message with its delivery status and the time of each status."""
    _customer(customer_id)
    messages = select(WhatsAppMessage, AT).where(WhatsAppMessage.contact_id == customer_id)
    found = page(tenant_session(), messages, [AT, WhatsAppMessage.id], query.cursor, query.limit)
    return {"data": [_message_out(*row) for row in found.rows], "next_cursor": found.next_cursor}
