"""Fixed-width field layouts of GB/T 32960 realtime blocks: one table per block and version.

The single source for the pure-Python reference, the Cython accelerator and the fused fast path
(``gateway._fastnorm``), so the three cannot disagree on a size, scale or offset. A field's value
is ``(raw - offset) / div`` (an int when ``div`` is 0); names are the message Structs' fields.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Field(NamedTuple):
    """One fixed-width numeric field: value = (raw - offset) / div (int when div == 0)."""

    name: str
    size: int
    div: int = 0
    offset: int = 0
    sentinel: bool = True


MOTOR_2016: Final = (
    Field("number", 1),
    Field("state", 1),
    Field("controller_temp_c", 1, 0, 40),
    Field("speed_rpm", 2, 0, 20000),
    Field("torque_nm", 2, 10, 20000),
    Field("temp_c", 1, 0, 40),
    Field("voltage_v", 2, 10),
    Field("current_a", 2, 10, 10000),
)

MOTOR_2025: Final = (
    Field("number", 1),
    Field("state", 1),
    Field("controller_temp_c", 1, 0, 40),
    Field("speed_rpm", 2, 0, 32000),
    Field("torque_nm", 4, 10, 200000),
    Field("temp_c", 1, 0, 40),
)

FUEL_CELL_HEAD: Final = (
    Field("voltage_v", 2, 10),
    Field("current_a", 2, 10),
    Field("consumption_kg_100km", 2, 100),
)

FUEL_CELL_TAIL: Final = (
    Field("h2_max_temp_c", 2, 10, 400),
    Field("h2_max_temp_probe", 1),
    Field("h2_max_conc_ppm", 2),
    Field("h2_max_conc_sensor", 1),
    Field("h2_max_pressure_mpa", 2, 10),
    Field("h2_max_pressure_sensor", 1),
    Field("dcdc_state", 1),
)

FUEL_CELL_ENGINE: Final = (
    Field("h2_max_temp_c", 2, 0, 40),
    Field("h2_max_temp_probe", 1),
    Field("h2_max_conc", 2, 10000),
    Field("h2_max_conc_sensor", 1),
    Field("h2_max_pressure_mpa", 2, 10),
    Field("h2_max_pressure_sensor", 1),
    Field("dcdc_state", 1),
    Field("h2_remaining_pct", 1),
    Field("dcdc_temp_c", 1, 0, 40),
)

ENGINE_2016: Final = (
    Field("state", 1),
    Field("crank_rpm", 2),
    Field("consumption_l_100km", 2, 100),
)

ENGINE_2025: Final = (Field("crank_rpm", 2),)

EXTREMES: Final = (
    Field("max_v_subsystem", 1),
    Field("max_v_cell", 1),
    Field("max_cell_v", 2, 1000),
    Field("min_v_subsystem", 1),
    Field("min_v_cell", 1),
    Field("min_cell_v", 2, 1000),
    Field("max_t_subsystem", 1),
    Field("max_t_probe", 1),
    Field("max_temp_c", 1, 0, 40),
    Field("min_t_subsystem", 1),
    Field("min_t_probe", 1),
    Field("min_temp_c", 1, 0, 40),
)

STACK: Final = (
    Field("number", 1),
    Field("voltage_v", 2, 10),
    Field("current_a", 2, 10),
    Field("h2_inlet_kpa", 2, 10, 1000),
    Field("air_inlet_kpa", 2, 10, 1000),
    Field("air_inlet_temp_c", 1, 0, 40),
)

SUPER_CAP: Final = (
    Field("number", 1),
    Field("voltage_v", 2, 10),
    Field("current_a", 2, 10, 30000),
)

SUPER_CAP_EXTREMES: Final = (
    Field("max_v_subsystem", 1),
    Field("max_v_index", 2),
    Field("max_v", 2, 1000),
    Field("min_v_subsystem", 1),
    Field("min_v_index", 2),
    Field("min_v", 2, 1000),
    Field("max_t_subsystem", 1),
    Field("max_t_index", 2),
    Field("max_temp_c", 1, 0, 40),
    Field("min_t_subsystem", 1),
    Field("min_t_index", 2),
    Field("min_temp_c", 1, 0, 40),
)
