"""Which devices a caller may see: SQL subqueries over the device registry (migration 0001).

* admin: every device (no subquery).
* operator: its vehicles (``vehicles.operator_id``), its JT/T 808 terminals (their own
  ``operator_id``, else their vehicle's), its chargers and its stations.
* regulator: the vehicles of its fleets and the terminals fitted to them. Chargers and
  stations belong to no fleet: a regulator sees none.

A subquery yields device ids (one text column) and takes the principal's operator id or fleet
list as its one parameter.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

from gateway.api.auth import Principal

DeviceClass: TypeAlias = Literal["vehicle", "charger", "station", "any"]

# nothing, but naming the parameter (its type must be known)
_NONE: Final = "SELECT NULL::text WHERE cardinality({p}::text[]) < 0"

_OPERATOR: Final[dict[str, str]] = {
    "vehicle": (
        "SELECT vin FROM vehicles WHERE operator_id = {p} "
        "UNION ALL SELECT t.phone FROM terminals t LEFT JOIN vehicles v ON v.vin = t.vin "
        "WHERE coalesce(t.operator_id, v.operator_id) = {p}"
    ),
    "charger": "SELECT charger_id FROM chargers WHERE operator_id = {p}",
    "station": "SELECT station_id FROM stations WHERE operator_id = {p}",
}
_REGULATOR: Final[dict[str, str]] = {
    "vehicle": (
        "SELECT vin FROM vehicles WHERE fleet_id = ANY({p}::text[]) "
        "UNION ALL SELECT t.phone FROM terminals t JOIN vehicles v ON v.vin = t.vin "
        "WHERE v.fleet_id = ANY({p}::text[])"
    ),
    "charger": _NONE,
    "station": _NONE,
}


def scope_sql(p: Principal, cls: DeviceClass, placeholder: str) -> tuple[str, Any] | None:
    """``(subquery, its parameter value)`` listing the ids of class ``cls`` that ``p`` may see
    (``placeholder``, e.g. ``$3``, stands for the parameter), or None when ``p`` sees all."""
    if p.role == "admin":
        return None
    table, value = (
        (_OPERATOR, p.operator_id) if p.role == "operator" else (_REGULATOR, list(p.fleets))
    )
    classes = ("vehicle", "charger", "station") if cls == "any" else (cls,)
    parts = [table[c].format(p=placeholder) for c in classes]
    return " UNION ALL ".join(f"({part})" for part in parts), value


def phone_forms(phone: str) -> list[str]:
    """A JT/T 808 phone as given and zero-padded to 12 (2013) and 20 (2019) digits: callers may
    leave out the leading zeros."""
    return list(dict.fromkeys((phone, phone.rjust(12, "0"), phone.rjust(20, "0"))))


def device_forms(device: str) -> list[str]:
    """A device id as given, and an all-digit one (a JT/T 808 phone) in its phone forms too."""
    return phone_forms(device) if device.isdigit() else [device]


async def visible(conn: Any, p: Principal, cls: DeviceClass, ids: list[str]) -> bool:
    """True when ``p`` may see one of ``ids`` (the forms of one device id)."""
    scope = scope_sql(p, cls, "$2")
    if scope is None:
        return True
    sql, value = scope
    found = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM ({sql}) s(id) WHERE id = ANY($1::text[]))", ids, value
    )
    return bool(found)
