"""The building blocks of every configuration section: the strict base Struct and the
constrained number types. Kept apart from :mod:`gateway.config` so that the modules defining
their own sections (forwarding) can use them while ``gateway.config`` imports those sections."""

from __future__ import annotations

from typing import Annotated

import msgspec

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]  # 0: any free port (tests)


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A configuration section: unknown keys are refused, frozen, keywords only."""
