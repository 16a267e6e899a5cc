"""Customers: what a batch says about them, written as one row per customer per tenant.

Meta names a customer by phone number (`wa_id`), by business-scoped user id (`user_id`), or both; since
2026 either may be missing. An event that carries both links them, so two rows that turn out to be one
customer are merged (the older row survives; messages and calls pointing at the other follow it). The
system messages user_changed_number / user_changed_user_id move a row to its new id and keep the old one
in `previous_*`, where a late event still carrying it finds the row.

Everything here happens in Python over the rows the batch's ids can touch, read once (locked, in id
order, on PostgreSQL) and written back with a few bulk statements, in a transaction of its own that
commits before the batch's messages are written (workers/batch.py). Two workers meeting a new customer at
once: the second's INSERT waits for the first to commit, then fails on the unique key; that is raised as
ContactRace, and the batch runs again (in place, like a deadlock), now reading the first one's row.

The locks are chosen so that customers never wait for a batch still writing messages that point at them
(those hold a FOR KEY SHARE lock on the row, through the foreign key, until they commit): rows are read FOR
NO KEY UPDATE, and a row whose ids did not change is written by an upsert that sets no unique-key column,
which PostgreSQL runs under that same lock. Only what changes a row's identity waits for such batches: a
new id, and a merge, whose merged-away rows are locked FOR UPDATE before their messages are repointed, so
that the repointing sees every message a batch committed pointing at them. A batch that finds its contact
merged away before it wrote gets a foreign-key error, and runs again.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    DateTime,
    Insert,
    RowMapping,
    Select,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import WhatsAppCall, WhatsAppContact, WhatsAppMessage
from models.bulk import insert_rows
from models.db import as_utc, dialect_of, upsert
from models.limits import row_problems
from workers.events import AddressBookEntry, Customer, IdChange, Preference

CONTACTS = WhatsAppContact.__table__
UNIQUE_VIOLATION = "23505"
IDS = ("wa_id", "user_id")
# The columns of the table's unique keys: an upsert that sets none of them takes the weaker row lock.
KEY_COLUMNS = ("id", "tenant_id", *IDS)
# The columns a row is found by: its ids now, and the ids it had before.
KEYS = (*IDS, "previous_wa_id", "previous_user_id")
# Every column the code writes (ids and write times are the database's).
COLUMNS = tuple(c.name for c in CONTACTS.columns if c.name not in {"id", "created_at", "updated_at"})
TIMES = tuple(c for c in COLUMNS if isinstance(CONTACTS.c[c].type, DateTime))
# What makes two sightings of a customer the same but for their time.
SIGHTING = attrgetter(*(f.name for f in fields(Customer) if f.name != "seen_at"))
# Order of events of one instant: what a customer sends is read before a notice that changes their ids.
SEEN, ID_CHANGE, PREFERENCE, ADDRESS_BOOK = range(4)


class ContactRace(Exception):
    """Another transaction stored one of this batch's new customers first: run the batch again."""


def customer_problems(c: Customer) -> list[str]:
    """What of this customer the contacts table cannot hold; empty when it fits."""
    row = {"wa_id": c.wa_id, "user_id": c.user_id, "parent_user_id": c.parent_user_id}
    return row_problems(CONTACTS, {**row, "profile_name": c.profile_name, "username": c.username})


@dataclass
class ContactUpdates:
    """Everything one batch says about customers, each with its tenant."""

    seen: list[tuple[int, Customer]] = field(default_factory=list)
    id_changes: list[tuple[int, IdChange]] = field(default_factory=list)
    preferences: list[tuple[int, Preference]] = field(default_factory=list)
    address_book: list[tuple[int, AddressBookEntry]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.seen or self.id_changes or self.preferences or self.address_book)

    def tenants(self) -> list[int]:
        every = (self.seen, self.id_changes, self.preferences, self.address_book)
        return sorted({tenant for kind in every for tenant, _ in kind})

    def ids(self) -> tuple[set[str], set[str]]:
        """Every phone number and every business-scoped id named, old and new."""
        people = [c for _, c in self.seen]
        people += [p.customer for _, p in self.preferences] + [e.customer for _, e in self.address_book]
        phones = {c.wa_id for c in people if c.wa_id}
        users = {c.user_id for c in people if c.user_id}
        for _, change in self.id_changes:
            phones |= {i for i in (change.old_wa_id, change.new_wa_id) if i}
            users |= {i for i in (change.old_user_id, change.new_user_id) if i}
        return phones, users


class ContactIds:
    """Which contact row each (tenant, id) came to; a message or call asks with its customer."""

    def __init__(self, by_id: dict[tuple[int, str, str], int]) -> None:
        self._by_id = by_id

    def of(self, tenant_id: int, customer: Customer | None) -> int | None:
        if customer is None:
            return None
        found = self._by_id.get((tenant_id, "user_id", customer.user_id)) if customer.user_id else None
        if found is None and customer.wa_id:
            found = self._by_id.get((tenant_id, "wa_id", customer.wa_id))
        return found


@dataclass(eq=False)
class _Row:
    """A contact as the batch leaves it; `id` None until inserted."""

    values: dict[str, Any]
    id: int | None = None
    stored: dict[str, Any] | None = None  # as read, to write back only what changed
    merged_into: "_Row | None" = None

    def __getitem__(self, column: str) -> Any:
        return self.values[column]

    def survivor(self) -> "_Row":
        row = self
        while row.merged_into is not None:
            row = row.merged_into
        return row


class _Book:
    """The rows a batch can touch, indexed by every id they hold or held, and the rules that change them."""

    def __init__(self, stored: Iterable[RowMapping]) -> None:
        self.rows: list[_Row] = []
        self._index: dict[tuple[int, str, str], _Row] = {}
        self.resolved: dict[tuple[int, str, str], _Row] = {}
        for record in stored:
            values = {c: record[c] for c in COLUMNS}
            values |= {c: as_utc(values[c]) for c in TIMES}
            self._add(_Row(values, record["id"], dict(values)))

    def _add(self, row: _Row) -> _Row:
        self.rows.append(row)
        for column in KEYS:
            if row[column]:
                self._index[(row["tenant_id"], column, row[column])] = row
        return row

    def _set(self, row: _Row, column: str, value: Any) -> None:
        """Change one value, keeping the index of ids in step."""
        old = row[column]
        if column in KEYS and old and self._index.get((row["tenant_id"], column, old)) is row:
            del self._index[(row["tenant_id"], column, old)]
        row.values[column] = value
        if column in KEYS and value:
            self._index[(row["tenant_id"], column, value)] = row

    def live(self) -> Iterator[_Row]:
        return (row for row in self.rows if row.merged_into is None)

    def _holding(self, tenant: int, column: str, value: str | None) -> _Row | None:
        return self._index.get((tenant, column, value)) if value else None

    def _new(self, tenant: int) -> _Row:
        values = dict.fromkeys(COLUMNS) | {"tenant_id": tenant}
        return self._add(_Row(values | {"marketing_opt_out": False, "in_address_book": False}))

    def _remember(self, tenant: int, row: _Row, *named: tuple[str, str | None]) -> None:
        for kind, value in named:
            if value:
                self.resolved[(tenant, kind, value)] = row

    def _move(self, row: _Row, column: str, new: str, old: str | None = None) -> None:
        """Give the row a new id, keeping the one it replaces in previous_<column>."""
        previous = old if old and old != new else row[column] if row[column] != new else None
        self._set(row, column, new)
        if previous:
            self._set(row, f"previous_{column}", previous)

    def locate(self, tenant: int, wa_id: str | None, user_id: str | None) -> tuple[_Row, bool]:
        """The row these ids name (merging two rows they link), or a new one; True when found by an id
        it holds now (False: found by an id it held before, or new)."""
        by_user, by_phone = self._holding(tenant, "user_id", user_id), self._holding(tenant, "wa_id", wa_id)
        if by_phone is not None and user_id and by_phone["user_id"] not in (None, user_id):
            # Another business-scoped id holds this number: a business-scoped id is the person (Meta
            # announces its own changes), so the number moved to another customer.
            self._set(by_phone, "previous_wa_id", by_phone["wa_id"])
            self._set(by_phone, "wa_id", None)
            by_phone = None
        if by_user is not None and by_phone is not None and by_user is not by_phone:
            return self.merge(by_user, by_phone), True  # the number's row had no business-scoped id yet
        row = by_user or by_phone
        if row is not None:
            return row, True
        previous = self._holding(tenant, "previous_user_id", user_id) or self._holding(
            tenant, "previous_wa_id", wa_id
        )
        return (previous, False) if previous is not None else (self._new(tenant), True)

    def merge(self, one: _Row, other: _Row) -> _Row:
        """One customer known by two rows: the older row takes the other's ids and history."""
        keep, gone = sorted((one, other), key=lambda r: (r.id is None, r.id or 0))
        later = _latest(keep, gone, "last_seen_at")
        merged = {
            **{c: keep[c] or gone[c] for c in (*KEYS, "parent_user_id")},
            **{c: later[c] or keep[c] or gone[c] for c in ("profile_name", "username")},
            "first_seen_at": _least(keep["first_seen_at"], gone["first_seen_at"]),
            "last_seen_at": _greatest(keep["last_seen_at"], gone["last_seen_at"]),
        }
        preference = _latest(keep, gone, "marketing_preference_at")
        book = _latest(keep, gone, "address_book_at")
        merged |= {c: preference[c] for c in ("marketing_opt_out", "marketing_preference_at")}
        merged |= {c: book[c] for c in ("in_address_book", "address_book_name", "address_book_at")}
        for column in KEYS:  # the other row's ids are the survivor's now
            self._set(gone, column, None)
        for column, value in merged.items():
            self._set(keep, column, value)
        gone.merged_into = keep
        return keep

    def seen(self, tenant: int, c: Customer) -> _Row:
        row, current = self.locate(tenant, c.wa_id, c.user_id)
        self._remember(tenant, row, ("wa_id", c.wa_id), ("user_id", c.user_id))
        values = row.values  # the columns outside KEYS are set directly: no index to keep in step
        if current:  # an event naming an id the row has since left tells nothing about its ids now
            for column, value in (("wa_id", c.wa_id), ("user_id", c.user_id)):
                # (an id the row held before is an old event's, not a change)
                if value and value not in (values[column], values[f"previous_{column}"]):
                    self._move(row, column, value)
            values["parent_user_id"] = c.parent_user_id or values["parent_user_id"]
        at, last = c.seen_at, values["last_seen_at"]
        newer = at is not None and (last is None or at >= last)
        for column, value in (("profile_name", c.profile_name), ("username", c.username)):
            if value and (newer or values[column] is None):
                values[column] = value
        if at is not None:
            values["first_seen_at"] = _least(values["first_seen_at"], at)
            values["last_seen_at"] = _greatest(last, at)
        return row

    def change_ids(self, tenant: int, change: IdChange) -> None:
        row, _ = self.locate(tenant, change.old_wa_id, change.old_user_id)
        moves = (
            ("wa_id", change.old_wa_id, change.new_wa_id),
            ("user_id", change.old_user_id, change.new_user_id),
        )
        for column, old, new in moves:
            if not new:
                continue
            holder = self._holding(tenant, column, new)
            if holder is not None and holder is not row:
                row = self.merge(row, holder)
            self._move(row, column, new, old)
        self._set(row, "parent_user_id", change.new_parent_user_id or row["parent_user_id"])
        self._remember(
            tenant,
            row,
            ("wa_id", change.old_wa_id),
            ("wa_id", change.new_wa_id),
            ("user_id", change.old_user_id),
            ("user_id", change.new_user_id),
        )

    def prefer(self, tenant: int, p: Preference) -> None:
        """The newest preference wins, whatever order they arrive in (at one instant, stop wins)."""
        row = self.seen(tenant, p.customer)
        held = row["marketing_preference_at"]
        if held is None or (p.at, p.opted_out) > (held, row["marketing_opt_out"]):
            self._set(row, "marketing_opt_out", p.opted_out)
            self._set(row, "marketing_preference_at", p.at)

    def address(self, tenant: int, e: AddressBookEntry) -> None:
        """The newest add or remove wins; a removed contact keeps its row (it is still a customer)."""
        row, _ = self.locate(tenant, e.customer.wa_id, None)
        self._remember(tenant, row, ("wa_id", e.customer.wa_id))
        if row["wa_id"] is None and row["user_id"] is None:
            self._set(row, "wa_id", e.customer.wa_id)
        held = row["address_book_at"]
        if held is None or (e.at, e.present) > (held, row["in_address_book"]):
            self._set(row, "in_address_book", e.present)
            self._set(row, "address_book_at", e.at)
            self._set(row, "address_book_name", e.customer.profile_name or row["address_book_name"])

    def ids(self) -> dict[tuple[int, str, str], int]:
        found: dict[tuple[int, str, str], int] = {}
        for row in self.live():
            assert row.id is not None, "every row is written before its id is asked for"
            for kind in IDS:
                for column in (kind, f"previous_{kind}"):
                    if row[column]:
                        found.setdefault((row["tenant_id"], kind, row[column]), row.id)
        for key, row in self.resolved.items():
            survivor = row.survivor()
            assert survivor.id is not None
            found[key] = survivor.id
        return found


def _latest(one: _Row, other: _Row, column: str) -> _Row:
    """The row whose `column` time is later (a row without one counts as earliest)."""
    if other[column] is not None and (one[column] is None or other[column] > one[column]):
        return other
    return one


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True)
class _Statements:
    read: Select[Any]
    update: Insert
    touch: Insert
    insert: Insert
    lock: Select[Any]


@cache
def _statements(dialect: str) -> _Statements:
    phones: BindParameter[str] = bindparam("phones", expanding=True)
    users: BindParameter[str] = bindparam("users", expanding=True)
    write = upsert(dialect, CONTACTS)
    return _Statements(
        read=select(CONTACTS)
        .where(CONTACTS.c.tenant_id.in_(bindparam("tenants", expanding=True)))
        .where(
            or_(
                CONTACTS.c.wa_id.in_(phones),
                CONTACTS.c.previous_wa_id.in_(phones),
                CONTACTS.c.user_id.in_(users),
                CONTACTS.c.previous_user_id.in_(users),
            )
        )
        .order_by(CONTACTS.c.id)
        # FOR NO KEY UPDATE, in id order; SQLite has one writer anyway
        .with_for_update(key_share=True),
        # Rows already stored, by primary key: every column as the batch leaves it. The RETURNING makes
        # SQLAlchemy send the rows as one multi-row statement (insertmanyvalues): without it SQLAlchemy
        # 2.1 runs an INSERT ... ON CONFLICT DO UPDATE as an executemany, a statement per row. One
        # statement is safe here: its rows have distinct ids, so none is updated twice.
        update=write.on_conflict_do_update(
            index_elements=["id"],
            set_={**{c: write.excluded[c] for c in COLUMNS if c != "tenant_id"}, "updated_at": func.now()},
        ).returning(CONTACTS.c.id),
        # Stored rows whose ids did not change: every other column (see the module's docstring).
        touch=write.on_conflict_do_update(
            index_elements=["id"],
            set_={
                **{c: write.excluded[c] for c in COLUMNS if c not in KEY_COLUMNS},
                "updated_at": func.now(),
            },
        ).returning(CONTACTS.c.id),
        # Matched back by their ids (unique per tenant), not by position: a RETURNING in the order of the
        # parameters would cost SQLite a statement per few rows.
        insert=CONTACTS.insert().returning(
            CONTACTS.c.id, CONTACTS.c.tenant_id, CONTACTS.c.user_id, CONTACTS.c.wa_id
        ),
        lock=select(CONTACTS.c.id)
        .where(CONTACTS.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(CONTACTS.c.id)
        .with_for_update(),
    )


def store_contacts(session: Session, updates: ContactUpdates) -> ContactIds:
    """Apply what the batch says about customers; return which row each of its ids came to."""
    if not updates:
        return ContactIds({})
    sql = _statements(dialect_of(session))
    phones, users = updates.ids()
    params = {"tenants": updates.tenants(), "phones": sorted(phones), "users": sorted(users)}
    book = _Book(session.execute(sql.read, params).mappings())
    for _, tenant, apply, item in _events(updates, book):
        apply(tenant, item)
    try:
        _write(session, sql, book)
    except IntegrityError as error:
        if getattr(error.orig, "pgcode", None) == UNIQUE_VIOLATION:
            raise ContactRace(str(error.orig)) from error
        raise
    return ContactIds(book.ids())


# An event's order: (time, kind, position); a time-less event sorts first.
EventKey = tuple[datetime, int, int]
Apply = Callable[[int, Any], Any]  # a _Book rule, given a tenant and the event
Event = tuple[EventKey, int, Apply, Any]
EARLIEST = datetime.min


def _events(updates: ContactUpdates, book: _Book) -> list[Event]:
    """Each change to apply, with its tenant, in (time, kind, position) order: so a batch holding a
    customer's old and new events leaves the same row in whatever order they were listed."""
    kinds: tuple[tuple[int, Apply, Iterable[tuple[int, Any]], Callable[[Any], Any]], ...] = (
        (SEEN, book.seen, _first_and_last(updates.seen), attrgetter("seen_at")),
        (ID_CHANGE, book.change_ids, updates.id_changes, attrgetter("at")),
        (PREFERENCE, book.prefer, updates.preferences, attrgetter("at")),
        (ADDRESS_BOOK, book.address, updates.address_book, attrgetter("at")),
    )
    events: list[Event] = []
    for kind, apply, items, time_of in kinds:
        for tenant, item in items:
            events.append(((_naive(time_of(item)) or EARLIEST, kind, len(events)), tenant, apply, item))
    events.sort(key=itemgetter(0))
    return events


def _first_and_last(seen: list[tuple[int, Customer]]) -> list[tuple[int, Customer]]:
    """Of the same customer seen the same way (ids and names) many times, the earliest and the latest
    sighting: the rules leave the same row for them as for all (earliest first seen, latest last seen,
    the same names), at a fraction of the work (a batch sees each customer on every message and status)."""
    extremes: dict[tuple[Any, ...], tuple[Customer, Customer]] = {}
    for tenant, c in seen:
        key = (tenant, SIGHTING(c))
        held = extremes.get(key)
        if held is None:
            extremes[key] = (c, c)
        elif c.seen_at is not None:
            first, last = held
            extremes[key] = (
                c if first.seen_at is None or c.seen_at < first.seen_at else first,
                c if last.seen_at is None or c.seen_at > last.seen_at else last,
            )
    return [(key[0], c) for key, pair in extremes.items() for c in dict.fromkeys(pair)]


def _naive(at: datetime | None) -> datetime | None:
    """Sortable beside events without a time (which go first)."""
    return at.replace(tzinfo=None) if at is not None else None


def _write(session: Session, sql: _Statements, book: _Book) -> None:
    """Merged-away rows first (their messages and calls follow the survivor), then changed rows (those
    giving up an id before those taking one, for the unique keys), then new rows."""
    gone = sorted(
        (row for row in book.rows if row.merged_into is not None and row.id is not None),
        key=lambda r: r.id or 0,
    )
    if gone:
        session.execute(sql.lock, {"ids": [row.id for row in gone]}).close()
    for row in gone:
        survivor = row.survivor()  # stored too: a merge keeps the stored row of the two
        for table in (WhatsAppMessage.__table__, WhatsAppCall.__table__):
            session.execute(update(table).where(table.c.contact_id == row.id).values(contact_id=survivor.id))
        session.execute(CONTACTS.delete().where(CONTACTS.c.id == row.id))
    releasing: list[_Row] = []
    taking: list[_Row] = []
    touched: list[_Row] = []
    for row in book.live():
        if row.id is not None and row.values != row.stored:
            stored = row.stored or {}
            changed = {c for c in IDS if (stored.get(c) or None) != (row[c] or None)}
            if any(stored.get(c) for c in changed):
                releasing.append(row)
            else:
                (taking if changed else touched).append(row)
    for statement, rows in ((sql.update, releasing), (sql.update, taking), (sql.touch, touched)):
        if rows:
            ordered = sorted(rows, key=lambda r: r.id or 0)
            insert_rows(session, statement, [{"id": r.id, **r.values} for r in ordered])
    new = [r for r in book.live() if r.id is None]
    if new:
        new.sort(key=lambda r: (r["tenant_id"], r["user_id"] or "", r["wa_id"] or ""))
        by_ids = {(r["tenant_id"], r["user_id"], r["wa_id"]): r for r in new}
        inserted = insert_rows(session, sql.insert, [r.values for r in new])
        for contact_id, tenant_id, user_id, wa_id in inserted:
            by_ids[(tenant_id, user_id, wa_id)].id = contact_id
