"""One tenant's view of the database: the one place the API's queries and writes are scoped.

Every request of the API works through a TenantSession for the tenant of its key. The session adds the
tenant's criterion to every ORM statement it runs, for every table in it (`with_loader_criteria`, applied
to the class wherever it appears: selected, joined, in a subquery, counted), so no endpoint writes a
`WHERE tenant_id = ...` of its own, and one that forgets cannot reach another tenant's rows. How a table
belongs to a tenant is data (OWNERSHIP below): its own `tenant_id`, found by looking at the columns, or its
parent's for the two tables that hang off another. A table with neither (the raw webhook bodies, fetched
media files) cannot be read through a TenantSession at all, and neither can a statement that is not an ORM
statement (plain SQL text, a Core table), which no criterion could be added to.

Writes are checked before each flush: every row added or changed must belong to the session's tenant, and
nothing is deleted (the API soft-deletes).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, event, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.orm.util import LoaderCriteriaOption

from models import Base, Tenant, WhatsAppCatalog, WhatsAppOrder, WhatsAppOrderItem, WhatsAppProduct


class OutsideTenantScope(Exception):
    """A statement or write that a tenant's session refuses: a bug in the API, never a client's error."""


@dataclass(frozen=True)
class Ownership:
    """How rows of one model belong to a tenant."""

    # The tenant's rows of the model, as a criterion on it (a function of the model, as with_loader_criteria
    # wants it, built for one tenant id).
    criterion: Callable[[int], Callable[[Any], ColumnElement[bool]]]
    # Whether a row about to be written is the tenant's, asked through the tenant's session.
    owns: Callable[["TenantSession", Any], bool]


def _own_column(tenant_id: int) -> Callable[[Any], ColumnElement[bool]]:
    return lambda cls: cls.tenant_id == tenant_id


def _has_tenant_id(session: "TenantSession", row: Any) -> bool:
    return bool(row.tenant_id == session.tenant_id)


def _catalogs_of(tenant_id: int) -> Callable[[Any], ColumnElement[bool]]:
    catalogs = select(WhatsAppCatalog.id).where(WhatsAppCatalog.tenant_id == tenant_id)
    return lambda cls: cls.catalog_id.in_(catalogs)


def _orders_of(tenant_id: int) -> Callable[[Any], ColumnElement[bool]]:
    orders = select(WhatsAppOrder.id).where(WhatsAppOrder.tenant_id == tenant_id)
    return lambda cls: cls.order_id.in_(orders)


def _the_tenant(tenant_id: int) -> Callable[[Any], ColumnElement[bool]]:
    return lambda cls: cls.id == tenant_id


def _visible_parent(model: type[Base], column: str) -> Callable[["TenantSession", Any], bool]:
    """A child row is the tenant's when its parent is visible through the tenant's session."""

    def owns(session: "TenantSession", row: Any) -> bool:
        with session.no_autoflush:
            return session.get(model, getattr(row, column)) is not None

    return owns


def _ownership() -> dict[type[Any], Ownership]:
    """Every model with a tenant_id column, plus the tenants themselves and the two child tables."""
    found: dict[type[Any], Ownership] = {
        mapper.class_: Ownership(_own_column, _has_tenant_id)
        for mapper in Base.registry.mappers
        if "tenant_id" in mapper.columns
    }
    found[Tenant] = Ownership(_the_tenant, lambda session, row: bool(row.id == session.tenant_id))
    found[WhatsAppProduct] = Ownership(_catalogs_of, _visible_parent(WhatsAppCatalog, "catalog_id"))
    found[WhatsAppOrderItem] = Ownership(_orders_of, _visible_parent(WhatsAppOrder, "order_id"))
    return found


OWNERSHIP = _ownership()


class TenantSession(Session):
    """A session that sees, and may write, one tenant's rows only."""

    def __init__(self, bind: Engine, tenant_id: int) -> None:
        super().__init__(bind=bind, expire_on_commit=False, autoflush=True)
        self.tenant_id = tenant_id
        self.criteria: list[LoaderCriteriaOption] = [
            with_loader_criteria(model, rule.criterion(tenant_id), include_aliases=True)
            for model, rule in OWNERSHIP.items()
        ]


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    session = state.session
    assert isinstance(session, TenantSession)
    if not state.is_orm_statement:
        raise OutsideTenantScope("a tenant's session runs ORM statements only (no text, no Core tables)")
    if not state.is_select:
        raise OutsideTenantScope("a tenant's session writes through the unit of work only (no bulk UPDATE)")
    for mapper in state.all_mappers:
        if mapper.class_ not in OWNERSHIP:
            raise OutsideTenantScope(f"{mapper.class_.__name__} belongs to no tenant: not reachable here")
    # Lazy and column loads inherit the criteria of the statement that loaded their objects.
    if not (state.is_column_load or state.is_relationship_load):
        state.statement = state.statement.options(*session.criteria)


@event.listens_for(TenantSession, "before_flush")
def _check_writes(session: Session, _transaction: UOWTransaction, _instances: object) -> None:
    assert isinstance(session, TenantSession)
    if session.deleted:
        raise OutsideTenantScope("the API deletes nothing (it soft-deletes)")
    for row in (*session.new, *session.dirty):
        rule = OWNERSHIP.get(type(row))
        if rule is None or not rule.owns(session, row):
            raise OutsideTenantScope(f"a {type(row).__name__} row outside tenant {session.tenant_id}")
