"""Customer records (客户档案): create, change, look up, search."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, false, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.clock import utcnow
from callcenter.phones import to_e164
from callcenter.store.models import Customer, CustomerContact

CUSTOMER_FIELDS = (
    "name",
    "account_number",
    "company",
    "tier",
    "value_score",
    "notes",
    "tags",
    "language",
)


class CustomerInputError(ValueError):
    """A field of a customer is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class CustomerView:
    customer: Customer
    phones: list[dict[str, str]] = field(default_factory=list)
    emails: list[dict[str, str]] = field(default_factory=list)


def normalize_phones(
    values: Sequence[Any], region: str, field_name: str = "phones"
) -> list[tuple[str, str]]:
    """(E.164, label) pairs; an invalid or withheld number is an error here, since a
    person typed it in and should hear about it."""
    out: list[tuple[str, str]] = []
    for index, item in enumerate(values):
        raw, label = (
            (item, "") if isinstance(item, str) else (item.get("number", ""), item.get("label", ""))
        )
        e164 = to_e164(raw, region)
        if e164 is None:
            raise CustomerInputError(
                f"{field_name}[{index}]", f"{raw!r} is not a valid phone number"
            )
        if e164 not in {p for p, _ in out}:
            out.append((e164, label))
    return out


def normalize_emails(values: Sequence[str], field_name: str = "emails") -> list[str]:
    out: list[str] = []
    for index, raw in enumerate(values):
        email = raw.strip().lower()
        local, at, domain = email.partition("@")
        if not at or not local or "." not in domain or " " in email or len(email) > 254:
            raise CustomerInputError(f"{field_name}[{index}]", f"{raw!r} is not an e-mail address")
        if email not in out:
            out.append(email)
    return out


async def create_customer(db: AsyncSession, data: dict[str, Any], region: str) -> Customer:
    """Add a customer (the caller commits). Raises :class:`CustomerInputError`."""
    phones = normalize_phones(data.get("phones", []), region)
    emails = normalize_emails(data.get("emails", []))
    await _check_account_free(db, data.get("account_number"), None)
    (customer,) = await insert_customers(db, [{**data, "phones": phones, "emails": emails}])
    return customer


async def insert_customers(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[Customer]:
    """Add customers whose fields are already checked and normalised.

    ``phones`` are (E.164, label) pairs, ``emails`` lower-case addresses. The
    customers go in through one flush and their contacts in one executemany,
    so a batch costs a few round trips rather than a few per row.
    """
    now = utcnow()
    customers = [
        Customer(
            **{key: value for key, value in row.items() if key in CUSTOMER_FIELDS},
            created_at=now,
            updated_at=now,
        )
        for row in rows
    ]
    db.add_all(customers)
    await db.flush()
    contacts = [
        {"customer_id": customer.id, "kind": kind, "value": value, "label": label}
        for customer, row in zip(customers, rows, strict=True)
        for kind, value, label in _contact_values(row)
    ]
    if contacts:
        await db.execute(insert(CustomerContact), contacts)
    return customers


def _contact_values(row: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for number, label in row.get("phones", []):
        yield "phone", number, label
    for email in row.get("emails", []):
        yield "email", email, ""


def _add_contacts(
    db: AsyncSession, customer_id: int, phones: list[tuple[str, str]], emails: list[str]
) -> None:
    for number, label in phones:
        db.add(CustomerContact(customer_id=customer_id, kind="phone", value=number, label=label))
    for email in emails:
        db.add(CustomerContact(customer_id=customer_id, kind="email", value=email, label=""))


async def _check_account_free(db: AsyncSession, account: str | None, own_id: int | None) -> None:
    if not account:
        return
    found = (
        await db.execute(select(Customer.id).where(Customer.account_number == account))
    ).scalar_one_or_none()
    if found is not None and found != own_id:
        raise CustomerInputError("account_number", "is already used by another customer")


async def update_customer(
    db: AsyncSession, customer: Customer, data: dict[str, Any], region: str
) -> dict[str, tuple[Any, Any]]:
    """Apply a partial change; ``phones``/``emails`` replace the lists. Returns what changed."""
    changed: dict[str, tuple[Any, Any]] = {}
    if "account_number" in data:
        await _check_account_free(db, data["account_number"], customer.id)
    for key in CUSTOMER_FIELDS:
        if key in data and getattr(customer, key) != data[key]:
            changed[key] = (getattr(customer, key), data[key])
            setattr(customer, key, data[key])
    if "phones" in data or "emails" in data:
        view = await load_contacts(db, [customer])
        current = view[customer.id]
        phones = (
            normalize_phones(data["phones"], region)
            if "phones" in data
            else [(p["number"], p["label"]) for p in current.phones]
        )
        emails = (
            normalize_emails(data["emails"])
            if "emails" in data
            else [e["email"] for e in current.emails]
        )
        await db.execute(delete(CustomerContact).where(CustomerContact.customer_id == customer.id))
        _add_contacts(db, customer.id, phones, emails)
        changed["contacts"] = ("", "")
    if changed:
        customer.updated_at = utcnow()
    return changed


async def load_contacts(db: AsyncSession, customers: Sequence[Customer]) -> dict[int, CustomerView]:
    views = {c.id: CustomerView(c) for c in customers}
    if not views:
        return views
    rows = (
        await db.execute(
            select(CustomerContact)
            .where(CustomerContact.customer_id.in_(views))
            .order_by(CustomerContact.id)
        )
    ).scalars()
    for contact in rows:
        view = views[contact.customer_id]
        if contact.kind == "phone":
            view.phones.append({"number": contact.value, "label": contact.label})
        else:
            view.emails.append({"email": contact.value})
    return views


def lookup_query(
    *, phone: str | None = None, email: str | None = None, account: str | None = None
) -> Select[tuple[Customer]]:
    """One indexed query finding customers by any identity given (E.164 phone,
    lower-case e-mail, account number)."""
    conditions: list[ColumnElement[bool]] = []
    identities = [("phone", phone), ("email", email)]
    wanted = [(kind, value) for kind, value in identities if value]
    if wanted:
        contact_match = select(CustomerContact.customer_id).where(
            or_(*[(CustomerContact.kind == k) & (CustomerContact.value == v) for k, v in wanted])
        )
        conditions.append(Customer.id.in_(contact_match))
    if account:
        conditions.append(Customer.account_number == account)
    if not conditions:
        return select(Customer).where(false())
    return select(Customer).where(or_(*conditions)).order_by(Customer.id)


async def lookup(
    db: AsyncSession,
    region: str,
    *,
    phone: str | None = None,
    email: str | None = None,
    account: str | None = None,
) -> list[Customer]:
    """Customers matching a caller's number, a chat e-mail or an account number.

    A withheld or invalid number matches nobody.
    """
    e164 = to_e164(phone, region) if phone else None
    mail = email.strip().lower() if email else None
    if not (e164 or mail or account):
        return []
    return list((await db.execute(lookup_query(phone=e164, email=mail, account=account))).scalars())


def search_query(text: str | None, tier: str | None, region: str) -> Select[tuple[Customer]]:
    stmt = select(Customer)
    if tier:
        stmt = stmt.where(Customer.tier == tier)
    if text:
        pattern = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        by_contact = select(CustomerContact.customer_id).where(
            func.lower(CustomerContact.value).like(pattern, escape="\\")
        )
        conditions = [
            func.lower(Customer.name).like(pattern, escape="\\"),
            func.lower(Customer.company).like(pattern, escape="\\"),
            func.lower(Customer.account_number).like(pattern, escape="\\"),
            Customer.id.in_(by_contact),
        ]
        e164 = to_e164(text, region)
        if e164:
            conditions.append(
                Customer.id.in_(
                    select(CustomerContact.customer_id).where(
                        (CustomerContact.kind == "phone") & (CustomerContact.value == e164)
                    )
                )
            )
        stmt = stmt.where(or_(*conditions))
    return stmt
