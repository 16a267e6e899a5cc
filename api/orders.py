"""Orders: listed newest first with filters, read with their items and linked products, and moved forward
through the back office's statuses (models/orders.py ORDER_STATUSES)."""

from apiflask import abort
from sqlalchemy import select

from api.pages import page
from api.resource import IF_MATCH_REFUSED, check_if_match, first_or_404, tenant_session, v1
from api.schemas import OrderDetail, OrderItemOut, OrderOut, OrderPage, OrderPatch, OrderQuery, ProductRef
from models import WhatsAppOrder, WhatsAppOrderItem, WhatsAppProduct
from models.orders import ORDER_STATUSES, order_may_move

SORT_KEY = (WhatsAppOrder.ordered_at, WhatsAppOrder.id)


def _order(order_id: int, lock: bool = False) -> WhatsAppOrder:
    query = select(WhatsAppOrder).where(WhatsAppOrder.id == order_id)
    found: WhatsAppOrder = first_or_404(
        tenant_session().scalar(query.with_for_update() if lock else query), f"order {order_id}"
    )
    return found


def _detail(order: WhatsAppOrder) -> OrderDetail:
    rows = tenant_session().execute(
        select(WhatsAppOrderItem, WhatsAppProduct)
        .outerjoin(WhatsAppProduct, WhatsAppProduct.id == WhatsAppOrderItem.product_id)
        .where(WhatsAppOrderItem.order_id == order.id)
        .order_by(WhatsAppOrderItem.position)
    )
    items = [
        OrderItemOut(
            position=item.position,
            product_retailer_id=item.product_retailer_id,
            quantity=item.quantity,
            item_price=item.item_price,
            currency=item.currency,
            product=ProductRef.model_validate(product) if product is not None else None,
        )
        for item, product in rows
    ]
    return OrderDetail.model_validate(
        {**{f: getattr(order, f) for f in OrderOut.model_fields}, "items": items}
    )


@v1.get("/orders")
@v1.input(OrderQuery, location="query", arg_name="query")
@v1.output(OrderPage)
def list_orders(query: OrderQuery) -> dict[str, object]:
    """The tenant's orders, newest first (by the time the customer ordered), optionally of one status, one
    customer, or a time range."""
    orders = select(WhatsAppOrder)
    if query.status is not None:
        orders = orders.where(WhatsAppOrder.status == query.status)
    if query.wa_id is not None:
        orders = orders.where(WhatsAppOrder.wa_id == query.wa_id)
    if query.since is not None:
        orders = orders.where(WhatsAppOrder.ordered_at >= query.since)
    if query.until is not None:
        orders = orders.where(WhatsAppOrder.ordered_at < query.until)
    found = page(tenant_session(), orders, SORT_KEY, query.cursor, query.limit, descending=True)
    return {"data": [OrderOut.model_validate(row) for (row,) in found.rows], "next_cursor": found.next_cursor}


@v1.get("/orders/<int:order_id>")
@v1.output(OrderDetail)
def get_order(order_id: int) -> OrderDetail:
    """An order with its items, each with the catalog product it was linked to (if known)."""
    return _detail(_order(order_id))


@v1.patch("/orders/<int:order_id>")
@v1.input(OrderPatch, arg_name="body")
@v1.output(OrderDetail)
@v1.doc(
    responses={
        409: "the order cannot move to that status (it only moves forward)",
        **IF_MATCH_REFUSED,
    }
)
def update_order(order_id: int, body: OrderPatch) -> OrderDetail:
    """Set the order's back-office status. Setting the status it has changes nothing (a retry is safe)."""
    session = tenant_session()
    order = _order(order_id, lock=True)  # two back offices moving one order: the second sees the first's move
    check_if_match(_detail(order))
    if body.status != order.status:
        if not order_may_move(order.status, body.status):
            allowed = [rule.status for rule in ORDER_STATUSES if order_may_move(order.status, rule.status)]
            abort(
                409,
                f"an order that is {order.status} cannot become {body.status}",
                {"status": order.status, "allowed": allowed},
            )
        order.status = body.status
        session.commit()
    return _detail(order)
