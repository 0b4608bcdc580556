"""The TCP terminal simulator against the platform stub (tests/platform_stub.py), real sockets."""

from __future__ import annotations

import dataclasses
import itertools
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.gbt32960 import constants as gc
from gateway.codecs.jt808 import constants as jc
from gateway.codecs.jt808 import params as jp
from gateway.simulator import Fleet, gbt_time
from gateway.tcp_simulator import SimConfig, TerminalFleet
from gateway.tcp_simulator_frames import DataClock, GbtFrames, JtFrames, gbt_as_reissue
from gateway.tcp_simulator_stats import LatencyHistogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from platform_stub import PlatformStub, Report

FAST = SimConfig(
    reconnect_min_s=0.02,
    reconnect_max_s=0.1,
    ack_timeout_s=3.0,
    drain_timeout_s=5.0,
    heartbeat_s=0,
    coalesce_s=0.02,  # a few reports per send, so drops catch some in flight
)


def config(stub: PlatformStub, **changes: Any) -> SimConfig:
    return dataclasses.replace(FAST, gbt_port=stub.gbt_port, jt_port=stub.jt_port, **changes)


def _times(reports: list[Report]) -> list[bytes]:
    return [r.time for r in reports]


# -- frames ----------------------------------------------------------------------------------


def test_patched_frames_decode_with_increasing_times() -> None:
    fleet = Fleet(4, versions=(2016, 2025, 2013, 2019))
    start = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    for truck in fleet.trucks:
        clock = DataClock(start)
        times: list[datetime | None] = []
        if truck.is_gbt:
            g = GbtFrames(fleet, truck, refresh_every=3, step_s=1.0)
            for _ in range(7):  # crosses two template refreshes
                raw = g.realtime(clock.next(), 3)
                frame = gbt.decode_frame(raw)
                assert isinstance(frame.body, gbt.RealtimeData) and frame.command == 0x02
                reissue = gbt.decode_frame(gbt_as_reissue(raw))
                assert reissue.command == 0x03 and reissue.body == frame.body
                times.append(frame.body.time.utc)
        else:
            j = JtFrames(fleet, truck, refresh_every=3, step_s=1.0)
            frames = []
            for _ in range(7):
                serial, raw = j.location(clock.next(), 3)
                m = jt.decode_frame(raw)
                assert m.serial == serial and isinstance(m.body, jt.Location)
                times.append(m.body.time.utc)
                frames.append(raw)
            batches = j.blind_area(frames * 10)
            assert len(batches) > 1 and sum(len(c) for _, _, c in batches) == 70
            for serial, raw, _ in batches:
                m = jt.decode_frame(raw)
                assert isinstance(m.body, jt.BatchLocation) and m.body.batch_type == 1
                assert m.serial == serial
        assert times[0] == start
        steps = {b - a for a, b in itertools.pairwise(times) if a is not None and b is not None}
        assert len(steps) == 1 and len(times) == 7


def test_wall_clock_never_repeats_a_second() -> None:
    clock = DataClock()
    ticks = [clock.next() for _ in range(50)]
    assert ticks == sorted(set(ticks)) and ticks[0] >= int(time.time()) - 1


def test_latency_histogram_percentiles() -> None:
    h = LatencyHistogram()
    for ms in range(1, 1001):
        h.add(ms / 1000)
    p50, p99 = h.percentile(0.5), h.percentile(0.99)
    assert p50 is not None and 490 <= p50 <= 515
    assert p99 is not None and 980 <= p99 <= 1000
    assert h.summary()["count"] == 1000 and LatencyHistogram().percentile(0.5) is None


# -- sessions and reports --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_both_protocols_log_in_report_and_log_out() -> None:
    async with PlatformStub() as stub:
        cfg = config(
            stub,
            gbt=2,
            jt=2,
            gbt_versions=(2016, 2025),
            jt_versions=(2013, 2019),
            frames=5,
            interval_s=0.02,
        )
        fleet = TerminalFleet(cfg)
        stats = await fleet.run()
        total = stats.total
        assert (total.generated, total.sent, total.acked, total.unacked) == (20, 20, 20, 0)
        assert (total.logins, total.registrations, total.logouts) == (4, 2, 4)
        assert total.errors == 0 and total.resent == 0 and total.reconnects == 0
        assert total.latency.count == 20 and total.latency.percentile(0.99) is not None
        assert stub.events["login"] == 2 and stub.events["register"] == 2
        assert stub.events["auth"] == 2 and stub.events["logout"] == 4
        for t in fleet.terminals:
            reports = stub.reports_of(t.device_id)
            assert len(reports) == 5 and all(r.acked for r in reports)
            assert {r.kind for r in reports} == (
                {"realtime"} if t.PROTOCOL == "gbt32960" else {"location"}
            )
            assert _times(reports) == sorted(set(_times(reports)))
        assert stats.summary()["ack_latency_ms"]["count"] == 20


@pytest.mark.asyncio
async def test_heartbeats_when_idle() -> None:
    async with PlatformStub() as stub:
        cfg = config(stub, gbt=1, jt=1, frames=0, heartbeat_s=0.05)
        async with TerminalFleet(cfg) as fleet:
            await fleet.wait_online(5)
            await stub.wait_until(lambda: stub.events["heartbeat"] >= 6)
        assert fleet.stats.total.heartbeats >= 6
        assert fleet.stats.gbt32960.heartbeat_acks >= 1 and fleet.stats.jt808.heartbeat_acks >= 1
        assert stub.reports == []


@pytest.mark.asyncio
async def test_refused_login_is_retried_and_time_synced() -> None:
    async with PlatformStub(refuse_logins=2) as stub:
        cfg = config(stub, gbt=1, frames=2, interval_s=0.01, time_sync=True)
        stats = await TerminalFleet(cfg).run()
        assert stats.gbt32960.login_failures == 2 and stats.gbt32960.logins == 1
        assert stats.gbt32960.time_syncs == 1 and stub.events["time sync"] == 1
        assert stats.gbt32960.acked == 2


@pytest.mark.asyncio
async def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    args += ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", *args],
        check=True,
        capture_output=True,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    async with PlatformStub(ssl=server) as stub:
        unverified = config(stub, gbt=1, jt=1, frames=3, interval_s=0.01, tls=True)
        verified = dataclasses.replace(unverified, tls_ca=str(cert), tls_server_name="localhost")
        for cfg in (unverified, verified):
            stats = await TerminalFleet(cfg).run()
            assert (stats.total.logins, stats.total.acked, stats.total.errors) == (2, 6, 0)
        plain = dataclasses.replace(unverified, tls=False, frames=0, connect_timeout_s=1.0)
        async with TerminalFleet(plain) as fleet:  # a plain client gets nowhere
            with pytest.raises(TimeoutError):
                await fleet.wait_online(1.0)
        assert fleet.stats.total.logins == 0 and fleet.stats.total.login_failures >= 1


# -- reconnects: exactly the unacknowledged reports come again ---------------------------------


def _check_resent_exactly_unacked(stub: PlatformStub, device: str, frames: int) -> None:
    """Every report that was not acknowledged came again later, none that was, and in the end
    every report made was acknowledged exactly once."""
    reports = stub.reports_of(device)
    assert any(not r.acked for r in reports), "the stub dropped reports unacknowledged"
    for i, r in enumerate(reports):
        later = {x.time for x in reports[i + 1 :] if x.connection > r.connection}
        if r.acked:
            assert r.time not in later, f"acknowledged report {r} was sent again"
        else:
            assert r.time in later, f"unacknowledged report {r} was not sent again"
    acked = [r.time for r in reports if r.acked]
    assert len(acked) == len(set(acked)) == frames


@pytest.mark.asyncio
async def test_gbt_resends_unacked_reports_as_reissue_after_a_drop() -> None:
    async with PlatformStub(drop_after=6, ack_delay_s=0.03) as stub:
        cfg = config(stub, gbt=1, frames=30, interval_s=0.005, window=16)
        fleet = TerminalFleet(cfg)
        stats = await fleet.run()
        vin = fleet.terminals[0].device_id
        _check_resent_exactly_unacked(stub, vin, 30)
        reissued = stub.reports_of(vin, "reissue")
        assert reissued and {r.connection for r in reissued} == {2}
        s = stats.gbt32960
        assert s.reconnects == 1 and s.logins == 2 and stub.logins[vin] == 2
        assert s.acked == 30 and s.resent == len(reissued) and s.unacked == 0
        assert s.sent - s.resent <= 30  # sent = sent as realtime + resent
        p50 = s.latency.percentile(0.5)
        assert p50 is not None and p50 >= 25  # the stub acks 30 ms late


@pytest.mark.asyncio
async def test_jt_resends_unacked_reports_as_blind_area_batches_after_drops() -> None:
    # the second drop hits the first connection's blind-area batch: it comes again as well
    async with PlatformStub(drop_after=5, drops=2, ack_delay_s=0.02) as stub:
        cfg = config(stub, jt=1, jt_versions=(2019,), frames=60, interval_s=0.005, window=8)
        # reconnecting takes 80-120 ms: the batch then carries ~20 reports made meanwhile, so the
        # second drop (after 5 reports) falls inside it
        cfg = dataclasses.replace(cfg, reconnect_min_s=0.1, reconnect_max_s=0.1)
        fleet = TerminalFleet(cfg)
        stats = await fleet.run()
        phone = fleet.terminals[0].device_id
        _check_resent_exactly_unacked(stub, phone, 60)
        blind = stub.reports_of(phone, "blind")
        assert {r.connection for r in blind} == {2, 3}
        assert any(not r.acked for r in blind if r.connection == 2)
        s = stats.jt808
        assert s.reconnects == 2 and s.registrations == 1  # the auth code was kept
        assert stub.events["register"] == 1 and stub.events["auth"] == 3
        assert s.acked == 60 and s.resent == len(blind) and s.unacked == 0


@pytest.mark.asyncio
async def test_platform_away_for_a_while_loses_nothing() -> None:
    # what a gateway kill -9 looks like from the terminals: every connection reset, then
    # connection refused for a while; reports made meanwhile are kept and reissued
    async with PlatformStub() as stub:
        cfg = config(stub, gbt=1, jt=1, frames=40, interval_s=0.01)
        async with TerminalFleet(cfg) as fleet:
            devices = [t.device_id for t in fleet.terminals]
            await stub.wait_until(lambda: all(len(stub.reports_of(d)) >= 5 for d in devices))
            await stub.close()
            await fleet.wait_generated(10)  # the rest was made while the platform was away
            await stub.start()

            def all_acked() -> bool:
                return all(
                    len({r.time for r in stub.reports_of(d) if r.acked}) == 40 for d in devices
                )

            await stub.wait_until(all_acked)
        s = fleet.stats.total
        assert s.reconnects == 2 and s.connect_failures >= 1 and s.resent >= 1
        assert (s.generated, s.acked, s.unacked, s.dropped) == (80, 80, 0, 0)
        assert [t.generated for t in fleet.terminals] == [40, 40]
        for d in devices:
            acked = [r.time for r in stub.reports_of(d) if r.acked]
            assert len(acked) == len(set(acked)) == 40  # each report acknowledged once
        kinds = {r.kind for r in stub.reports if r.connection > 2}
        assert kinds <= {"reissue", "blind", "realtime", "location"} and kinds & {
            "reissue",
            "blind",
        }


@pytest.mark.asyncio
async def test_no_ack_mode_does_not_wait_for_acks() -> None:
    async with PlatformStub(ack_reports=False) as stub:
        cfg = config(stub, gbt=1, jt=1, frames=40, interval_s=0.002, window=4, ack_reports=False)
        started = time.monotonic()
        stats = await TerminalFleet(cfg).run()
        assert time.monotonic() - started < cfg.drain_timeout_s  # no drain wait at the end
        total = stats.total
        assert (total.sent, total.acked, total.unacked, total.errors) == (80, 0, 0, 0)
        assert len(stub.reports) == 80 and not any(r.acked for r in stub.reports)


@pytest.mark.asyncio
async def test_window_limits_reports_in_flight_when_acks_stop() -> None:
    async with PlatformStub(ack_reports=False) as stub:
        cfg = config(stub, gbt=1, frames=20, interval_s=0.002, window=5, drain_timeout_s=0.2)
        stats = await TerminalFleet(cfg).run()
        assert len(stub.reports) == 5  # the window is full: the other reports wait
        assert stats.gbt32960.generated == 20 and stats.gbt32960.unacked == 20


# -- platform commands -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_gbt_commands_are_answered_and_set_then_query_returns_it() -> None:
    async with PlatformStub() as stub:
        cfg = config(stub, gbt=1, gbt_versions=(2025,), frames=0)
        async with TerminalFleet(cfg) as fleet:
            await fleet.wait_online(5)
            vin = fleet.terminals[0].device_id
            now = gbt_time(datetime.now(UTC))
            params = [
                gbt.Param(id=gc.PARAM_HEARTBEAT_PERIOD, value=45),
                gbt.Param(id=gc.PARAM_DOMAIN_LENGTH, value=11),
                gbt.Param(id=gc.PARAM_DOMAIN, value=b"gw.example1"),
            ]
            answer = await stub.command_gbt(vin, 0x81, gbt.ParamValues(time=now, params=params))
            assert answer.response == 0x01 and isinstance(answer.body, gbt.TimeOnly)
            query = gbt.ParamQuery(time=now, ids=[gc.PARAM_HEARTBEAT_PERIOD, gc.PARAM_DOMAIN, 0x02])
            answer = await stub.command_gbt(vin, 0x80, query)
            assert answer.response == 0x01 and isinstance(answer.body, gbt.ParamValues)
            values = {p.id: p.value for p in answer.body.params}
            assert values[gc.PARAM_HEARTBEAT_PERIOD] == 45
            assert (
                values[gc.PARAM_DOMAIN] == b"gw.example1" and values[gc.PARAM_DOMAIN_LENGTH] == 11
            )
            assert values[0x02] == 10
            read_only = [gbt.Param(id=gc.PARAM_FIRMWARE_VERSION, value=b"FW999")]
            answer = await stub.command_gbt(vin, 0x81, gbt.ParamValues(time=now, params=read_only))
            assert answer.response == 0x02
            warning = gbt.Control(
                time=now, command=0x06, params=gbt.ControlWarning(level=1, message="hi")
            )
            answer = await stub.command_gbt(vin, 0x82, warning)
            assert answer.response == 0x01
            # terminal reset: it answers, drops the link, comes back and logs in again
            answer = await stub.command_gbt(vin, 0x82, gbt.Control(time=now, command=0x03))
            assert answer.response == 0x01
            await stub.wait_until(lambda: stub.logins[vin] == 2)
            assert fleet.terminal(vin).heartbeat_s == 45
        assert fleet.stats.gbt32960.commands == 5 and fleet.stats.gbt32960.reconnects == 1


@pytest.mark.asyncio
async def test_jt_commands_are_answered_and_set_then_query_returns_it() -> None:
    async with PlatformStub() as stub:
        cfg = config(stub, jt=1, jt_versions=(2019,), frames=0)
        async with TerminalFleet(cfg) as fleet:
            await fleet.wait_online(5)
            phone = fleet.terminals[0].device_id

            async def general(msg_id: int, body: jt.Body) -> tuple[int, int]:
                answer = await stub.command_jt(phone, msg_id, body)
                assert answer.msg_id == jc.TERMINAL_GENERAL_RESPONSE
                assert isinstance(answer.body, jt.TerminalGeneralResponse)
                return answer.body.reply_msg_id, answer.body.result

            async def query(msg_id: int, body: jt.Body) -> jt.QueryParamsResponse:
                answer = await stub.command_jt(phone, msg_id, body)
                assert answer.msg_id == jc.QUERY_PARAMS_RESPONSE
                assert isinstance(answer.body, jt.QueryParamsResponse)
                return answer.body

            new: dict[int, jt.ParamValue] = {
                jp.PARAM_HEARTBEAT_INTERVAL: 45,
                jp.PARAM_PLATE: "粤A12345",
            }
            set_body = jt.SetParams(params=jt.param_items(new))
            assert await general(jc.SET_PARAMS, set_body) == (jc.SET_PARAMS, jc.RESULT_OK)
            asked = (jp.PARAM_PLATE, 0xF123, jp.PARAM_HEARTBEAT_INTERVAL, jp.PARAM_ODOMETER)
            some = await query(jc.QUERY_PARAMS, jt.QueryParams(param_ids=asked))
            # the known ids in the order asked, the set ones exactly as they were sent
            assert [p.param_id for p in some.params] == [0x0083, 0x0001, 0x0080]
            assert some.params[:2] == set_body.params[::-1]
            assert jt.param_values(some.params) == {**new, jp.PARAM_ODOMETER: 10000}
            every = await query(jc.QUERY_ALL_PARAMS, jt.QueryAllParams())
            assert every.reply_serial == some.reply_serial + 1
            values = jt.param_values(every.params)
            assert len(values) == len(every.params) >= 8 and values.items() >= new.items()
            assert values[jp.PARAM_MAIN_SERVER] == "127.0.0.1"
            control = jt.TerminalControl(command=jc.CONTROL_POWER_OFF)
            assert await general(jc.TERMINAL_CONTROL, control) == (jc.TERMINAL_CONTROL, 0)
            text = jt.TextMessage(flags=jc.TEXT_FLAG_DISPLAY, text="你好", text_type=1)
            assert await general(jc.TEXT_MESSAGE, text) == (jc.TEXT_MESSAGE, jc.RESULT_OK)
            unknown = jt.RawBody(data=b"\x00")
            assert await general(0x8999, unknown) == (0x8999, jc.RESULT_UNSUPPORTED)
            assert fleet.stats.jt808.errors == 0
            # malformed bodies: answered "bad message" and counted as errors
            for msg_id, data in (
                (jc.SET_PARAMS, b"\x01\x00"),  # one item, truncated
                (jc.QUERY_PARAMS, b"\x02\x00\x00\x00\x01"),  # two ids, one given
                (jc.TEXT_MESSAGE, b""),
            ):
                bad = jt.RawBody(data=data)
                assert await general(msg_id, bad) == (msg_id, jc.RESULT_BAD_MESSAGE)
            assert fleet.stats.jt808.errors == 3
            assert fleet.terminal(phone).heartbeat_s == 45
            # terminal reset: it answers, drops the link, comes back and authenticates again
            reset = jt.TerminalControl(command=jc.CONTROL_RESET)
            assert await general(jc.TERMINAL_CONTROL, reset) == (jc.TERMINAL_CONTROL, 0)
            await stub.wait_until(lambda: stub.logins[phone] == 2)
            again = await query(jc.QUERY_PARAMS, jt.QueryParams(param_ids=(jp.PARAM_PLATE,)))
            assert jt.param_values(again.params) == {jp.PARAM_PLATE: "粤A12345"}
        s = fleet.stats.jt808
        assert s.commands == 11 and s.reconnects == 1 and s.registrations == 1


# -- scale -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_200_concurrent_terminals() -> None:
    async with PlatformStub() as stub:
        cfg = config(
            stub,
            gbt=100,
            jt=100,
            gbt_versions=(2016, 2025),
            jt_versions=(2013, 2019),
            frames=3,
            interval_s=0.05,
        )
        stats = await TerminalFleet(cfg).run()
        total = stats.total
        assert total.logins == 200 and stub.connections == 200
        assert (total.sent, total.acked, total.unacked, total.errors) == (600, 600, 0, 0)
        assert len({r.device for r in stub.reports}) == 200 and all(r.acked for r in stub.reports)
