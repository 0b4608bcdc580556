"""JSON responses encoded by msgspec, and the API's errors.

Endpoints return :class:`Json` themselves, so FastAPI's ``jsonable_encoder`` never walks the
rows: msgspec encodes datetimes (RFC 3339, ``Z``), UUIDs, and the ``json`` / ``jsonb`` columns
the API's connections hand over as :class:`msgspec.Raw` (embedded as they are, not parsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

_encode = msgspec.json.Encoder().encode


class Json(Response):
    """``application/json`` by msgspec."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


class ApiError(Exception):
    """An error answer: ``status``, a ``detail`` text, more fields, headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> Json:
        return Json({"detail": self.detail, **self.extra}, self.status, headers=self.headers)


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for an error status."""
    return {
        "description": description,
        "content": {"application/json": {"example": {"detail": description}}},
    }


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_doc("missing, unknown, expired or revoked token"),
    429: error_doc("rate limit: retry after the Retry-After header's seconds"),
}
