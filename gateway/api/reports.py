"""``/v1/reports/{kind}``: the compliance reports of :mod:`gateway.reports` (vehicles, chargers,
swap stations per local day) as JSON, CSV, HTML or PDF, within the caller's scope.

Scope: an admin reports on anything; an operator on its own operator only (``operator`` defaults
to the token's, another one is 403); a regulator on the vehicles of its granted fleets only
(``fleet`` defaults to all of them, one not granted is 403; chargers and swap stations belong to
no fleet: 403, like the audit). Device filters (``vin``, ``station``, ``charger``) outside the
scope are left out, as in every list and query of the API. A report runs on one connection of
the API's pool (each statement under ``[api] query_timeout_s``), at most ``[api] max_reports``
at once per process (503 beyond) and ``[api] report_timeout_s`` in all (504 beyond).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.api.auth import Principal
from gateway.api.deps import ApiContext, Caller, Ctx
from gateway.api.responses import COMMON_ERRORS, ApiError, error_doc
from gateway.reports.build import MEDIA_TYPES, ReportFormat, build_report, render
from gateway.reports.intervals import ReportError
from gateway.reports.model import ReportKind, Scope

router = APIRouter(prefix="/v1/reports", tags=["reports"])

_DISPOSITION: Final[dict[str, str]] = {"csv": "attachment", "pdf": "attachment", "html": "inline"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    200: {
        "description": "the report in the asked format",
        "content": {media: {} for media in MEDIA_TYPES.values()},
    },
    403: error_doc("another operator, a fleet not granted, or a regulator asking for chargers"),
    422: error_doc("bad argument: range ends before it starts or is too long, unknown zone"),
    503: error_doc("too many reports running in this process, or the database is away"),
    504: error_doc("the report ran longer than [api] report_timeout_s; narrow it"),
}

Repeated = Annotated[list[str] | None, Query()]


def report_scope(
    p: Principal,
    kind: ReportKind,
    *,
    operator: str | None = None,
    fleets: list[str] | None = None,
    vins: list[str] | None = None,
    stations: list[str] | None = None,
    chargers: list[str] | None = None,
) -> Scope:
    """The :class:`Scope` of a request by ``p``: its filters narrowed to what ``p`` may see
    (:class:`ApiError` 403 for a grant it does not have)."""
    wanted = list(dict.fromkeys(fleets or ()))
    if p.role == "regulator":
        if kind != "vehicles":
            raise ApiError(403, "a regulator token sees vehicles only, no chargers or stations")
        outside = [f for f in wanted if f not in p.fleets]
        if outside:
            raise ApiError(403, f"fleet {outside[0]!r} is not granted to this token")
        wanted = wanted or list(p.fleets)
        if not wanted:  # never all vehicles for want of a grant
            raise ApiError(403, "this regulator token is granted no fleet")
    elif p.role == "operator":
        if p.operator_id is None or operator not in (None, p.operator_id):
            raise ApiError(403, "an operator token reports on its own operator only")
        operator = p.operator_id
    return Scope(
        operator=operator,
        fleets=tuple(wanted),
        vins=tuple(dict.fromkeys(vins or ())),
        stations=tuple(dict.fromkeys(stations or ())),
        chargers=tuple(dict.fromkeys(chargers or ())),
    )


def _slots(request: Request, ctx: ApiContext) -> asyncio.Semaphore:
    """This application's report slots (``[api] max_reports``)."""
    state = request.app.state
    slots: asyncio.Semaphore | None = getattr(state, "report_slots", None)
    if slots is None:
        slots = state.report_slots = asyncio.Semaphore(ctx.cfg.max_reports)
    return slots


@router.get(
    "/{kind}",
    summary="A compliance report: vehicles, chargers or swap stations per local day",
    description="One row per vehicle / charger connector / swap station and local day from "
    "`from` to `to` (both included; `to` defaults to `from`; at most `[reports] max_days` "
    "days). Fields, methods and the time-zone rule: docs/reports.md. `format`: `json` (the "
    "whole report: kind, days, scope, parameters, rows), `csv` (one line per row), `html` "
    "(printable, charts) or `pdf`. Operators get their own operator's devices, regulators the "
    "vehicles of their fleets (`chargers` and `swap` are 403 for them).",
    responses=_ERRORS,
    response_class=Response,
)
async def report(
    request: Request,
    ctx: Ctx,
    p: Caller,
    kind: ReportKind,
    start: Annotated[date, Query(alias="from", description="first local day (YYYY-MM-DD)")],
    to: Annotated[date | None, Query(description="last local day, included")] = None,
    operator: Annotated[str | None, Query(description="this operator's devices")] = None,
    fleet: Annotated[list[str] | None, Query(description="vehicles of these fleets")] = None,
    vin: Annotated[list[str] | None, Query(description="these vehicles")] = None,
    station: Annotated[list[str] | None, Query(description="these stations")] = None,
    charger: Annotated[list[str] | None, Query(description="these chargers")] = None,
    tz: Annotated[str | None, Query(description="one IANA zone for every row")] = None,
    fmt: Annotated[ReportFormat, Query(alias="format")] = "json",
    rollups: Annotated[
        bool, Query(description="vehicles: read refreshed days from the rollup (faster)")
    ] = True,
) -> Response:
    scope = report_scope(
        p, kind, operator=operator, fleets=fleet, vins=vin, stations=station, chargers=charger
    )
    slots = _slots(request, ctx)
    if slots.locked():
        raise ApiError(
            503,
            f"{ctx.cfg.max_reports} reports are being built; retry shortly",
            headers={"Retry-After": "10"},
        )
    limit = ctx.cfg.report_timeout_s
    try:
        async with slots, asyncio.timeout(limit):
            async with ctx.pool.acquire() as conn:
                made = await build_report(
                    conn,
                    kind,
                    scope,
                    start,
                    to or start,
                    settings=ctx.reports,
                    tz=tz,
                    rollups=rollups,
                )
            # PDF and HTML take a second or two for large reports: off the event loop
            body = await asyncio.to_thread(render, made, fmt)
    except ReportError as exc:
        raise ApiError(422, str(exc)) from None
    except TimeoutError:
        raise ApiError(504, f"the report ran longer than {limit:g} s; narrow it") from None
    headers = {}
    if fmt in _DISPOSITION:
        name = f"silkgate-{kind}-{start.isoformat()}_{(to or start).isoformat()}.{fmt}"
        headers["Content-Disposition"] = f'{_DISPOSITION[fmt]}; filename="{name}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)
