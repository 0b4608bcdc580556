"""``/v1/reports``: the place for the compliance reports of ``gateway/reports/`` (a later
change). Add their endpoints to :data:`router`; it is already part of the application
(:func:`gateway.api.app.create_app`), behind the same authentication, scoping and rate limits
(depend on :data:`gateway.api.deps.Caller`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/reports", tags=["reports"])
