"""Child process for the kill -9 test: an MqttIntake that acknowledges only its first deliveries.

Usage: mqtt_child.py HOST PORT CLIENT_ID TOPIC MAX_IN_FLIGHT ACK_FIRST (-1: acknowledge all).
Prints ``READY`` once subscribed, ``RECV <payload> <dup>`` per delivery and ``ACKED <n>`` after
each acknowledgement, flushing every line; it runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.adapters.mqtt_client import MqttIntake, MqttIntakeConfig


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(
    host: str, port: int, client_id: str, topic: str, limit: int, ack_first: int
) -> None:
    cfg = MqttIntakeConfig(
        host=host,
        port=port,
        client_id=client_id,
        subscriptions=[(topic, 1)],
        session_expiry=120,
        max_in_flight=limit,
    )
    async with MqttIntake(cfg) as intake:
        await intake.wait_connected(10)
        say("READY")
        n = 0
        async for d in intake:
            say(f"RECV {d.payload.decode()} {int(d.dup)}")
            n += 1
            if ack_first < 0 or n <= ack_first:
                d.ack()
                say(f"ACKED {intake.stats.acked}")


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], int(a[1]), a[2], a[3], int(a[4]), int(a[5])))
