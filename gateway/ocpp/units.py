"""OCPP units of measure to SI: kWh -> Wh, kW -> W, Fahrenheit and K -> Celsius, ...

OCPP 1.6 names the unit of a sampled value with a fixed list (``Celcius`` misspelt in the spec,
``Celsius`` accepted too); OCPP 2.0.1 sends ``unitOfMeasure {unit, multiplier}`` where the unit
is free text (the spec's list of standardized units) and ``multiplier`` a power of ten. Both
default the unit to ``Wh`` "if the (default) measurand is an Energy type"; for the other
measurands :func:`default_unit` gives the measurand's natural unit.

Values are stored in Wh, varh, VAh, W, var, VA, A, V, Hz, Celsius, Percent (and units this
table does not know, kept as sent after the multiplier). Power-of-ten scaling is exact in
decimal: 1.001 kWh is 1001.0 Wh, not 1000.9999999999999.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_UNIT", "SI_UNITS", "default_unit", "to_si"]

DEFAULT_UNIT: Final = "Wh"

# unit -> (power of ten, SI unit name)
_SCALED: Final[dict[str, tuple[int, str]]] = {
    "Wh": (0, "Wh"),
    "kWh": (3, "Wh"),
    "MWh": (6, "Wh"),
    "varh": (0, "varh"),
    "kvarh": (3, "varh"),
    "VAh": (0, "VAh"),
    "kVAh": (3, "VAh"),
    "W": (0, "W"),
    "kW": (3, "W"),
    "MW": (6, "W"),
    "var": (0, "var"),
    "kvar": (3, "var"),
    "VA": (0, "VA"),
    "kVA": (3, "VA"),
    "A": (0, "A"),
    "mA": (-3, "A"),
    "V": (0, "V"),
    "kV": (3, "V"),
    "Celsius": (0, "Celsius"),
    "Celcius": (0, "Celsius"),  # the OCPP 1.6 spelling
    "Percent": (0, "Percent"),
    "Hertz": (0, "Hz"),  # 1.6
    "Hz": (0, "Hz"),  # 2.0.1
    "RPM": (0, "RPM"),
}

# unit -> (offset, numerator, denominator): SI = (value + offset) * numerator / denominator
_AFFINE: Final[dict[str, tuple[float, int, int]]] = {
    "Fahrenheit": (-32.0, 5, 9),
    "K": (-273.15, 1, 1),
}

# Spellings seen from 2.0.1 chargers (free-text unit), looked up lower-cased when the exact
# name is unknown. Only names whose lower case is unambiguous (not mW / MW).
_ALIASES: Final[dict[str, str]] = {
    "wh": "Wh",
    "kwh": "kWh",
    "varh": "varh",
    "kvarh": "kvarh",
    "vah": "VAh",
    "kvah": "kVAh",
    "w": "W",
    "kw": "kW",
    "var": "var",
    "kvar": "kvar",
    "va": "VA",
    "kva": "kVA",
    "a": "A",
    "v": "V",
    "hz": "Hz",
    "hertz": "Hertz",
    "celsius": "Celsius",
    "celcius": "Celsius",
    "degc": "Celsius",
    "°c": "Celsius",
    "fahrenheit": "Fahrenheit",
    "degf": "Fahrenheit",
    "°f": "Fahrenheit",
    "percent": "Percent",
    "%": "Percent",
    "rpm": "RPM",
}

SI_UNITS: Final[dict[str, str]] = {unit: si for unit, (exp, si) in _SCALED.items() if exp == 0}
"""Units whose values need no conversion, to their stored name (``Celcius`` -> ``Celsius``,
``Hertz`` -> ``Hz``): the fast path of the normalizers."""

_POW10: Final = tuple(10.0**k for k in range(23))  # exact doubles up to 1e22

# The natural unit of each measurand (both versions), for sampled values without a unit.
_MEASURAND_UNITS: Final[dict[str, str]] = {
    "Energy.Active.Export.Register": "Wh",
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Interval": "Wh",
    "Energy.Active.Import.Interval": "Wh",
    "Energy.Active.Net": "Wh",
    "Energy.Reactive.Export.Register": "varh",
    "Energy.Reactive.Import.Register": "varh",
    "Energy.Reactive.Export.Interval": "varh",
    "Energy.Reactive.Import.Interval": "varh",
    "Energy.Reactive.Net": "varh",
    "Energy.Apparent.Net": "VAh",
    "Energy.Apparent.Import": "VAh",
    "Energy.Apparent.Export": "VAh",
    "Power.Active.Export": "W",
    "Power.Active.Import": "W",
    "Power.Offered": "W",
    "Power.Reactive.Export": "var",
    "Power.Reactive.Import": "var",
    "Power.Factor": "",  # a ratio: no unit
    "Current.Import": "A",
    "Current.Export": "A",
    "Current.Offered": "A",
    "Voltage": "V",
    "Frequency": "Hz",
    "Temperature": "Celsius",
    "SoC": "Percent",
    "RPM": "RPM",
}


def default_unit(measurand: str) -> str:
    """The unit of a sampled value that names none: Wh for energy (the spec's default), else
    the measurand's natural unit (W for power, A for current, Percent for SoC, ...)."""
    return _MEASURAND_UNITS.get(measurand, DEFAULT_UNIT)


def to_si(value: float, unit: str | None, multiplier: int = 0) -> tuple[float, str]:
    """``value`` in ``unit`` times 10**``multiplier`` (OCPP 2.0.1 unitOfMeasure), as (value, unit)
    in SI units: kWh -> Wh, kW -> W, kvarh -> varh, kvar -> var, kVA -> VA, Celcius -> Celsius,
    Fahrenheit and K -> Celsius, Hertz -> Hz. ``unit`` None is Wh. A unit this table does not
    know keeps its name (the multiplier applied); common free-text spellings (kwh, %, degC)
    are recognized."""
    if unit is None:
        unit = DEFAULT_UNIT
    scaled = _SCALED.get(unit)
    if scaled is None:
        affine = _AFFINE.get(unit)
        if affine is None:
            alias = _ALIASES.get(unit.lower())
            if alias is None:
                return _shift(float(value), multiplier), unit
            return to_si(value, alias, multiplier)
        offset, num, den = affine
        # Rounded to 1e-9 degree: 300 K would otherwise be 26.850000000000023 Celsius.
        return round((_shift(float(value), multiplier) + offset) * num / den, 9), "Celsius"
    exp, si = scaled
    return _shift(float(value), exp + multiplier), si


def _shift(value: float, exp: int) -> float:
    """value * 10**exp, correctly rounded for the decimal the value stands for."""
    if exp == 0:
        return value
    if -23 < exp < 23 and value.is_integer():
        # An exact integer times or over an exact power of ten: IEEE rounds the exact result once.
        return value * _POW10[exp] if exp > 0 else value / _POW10[-exp]
    if value - value != 0.0:  # inf or nan
        return value * 10.0**exp
    if 0 < exp < 23:
        # Most scaled values land on a whole number (7.2 kW, 12.345 kWh): the product is then
        # at most an ulp or two off it, and a decimal that close to a whole number but not one
        # would need more digits than a double holds.
        product = value * _POW10[exp]
        whole = round(product)
        if abs(product - whole) <= abs(product) * 5e-16:
            return float(whole)
    # The shortest repr is the decimal the device sent; shift its exponent instead of
    # multiplying (1.001 * 1000 is 1000.9999999999999).
    mantissa, _, exponent = repr(value).partition("e")
    return float(f"{mantissa}e{int(exponent or 0) + exp}")
