"""Start a run from any program and read every one of its events, from the first (nats-py only).

    python docs/examples/follow_run.py nats://127.0.0.1:4222 demo '{"topic": "NATS"}'

Use the URL `ca-actors up` printed (`NATS: ...`), and log in as the stack's ``cli`` user: its password
is in ``.ca-actors/nats-auth.json`` (``export NATS_USER=cli NATS_PASSWORD=...``). The trigger is a
request: the scheduler answers with the run id. The run's events are kept in the CA_EVENTS stream, so
an ordered consumer on ``ca.evt.<run_id>.>`` replays them from the first one, even those published before it subscribed.
"""

import asyncio
import json
import os
import sys

import nats

END = {"run.finished", "run.failed", "run.cancelled", "run.rejected"}


async def main(url: str, flow: str, inputs: str) -> None:
    nc = await nats.connect(url, user=os.environ.get("NATS_USER"), password=os.environ.get("NATS_PASSWORD"))
    reply = await nc.request(f"ca.trigger.{flow}", inputs.encode(), timeout=15)
    run_id = json.loads(reply.data)["run_id"]
    print("run", run_id)
    sub = await nc.jetstream().subscribe(f"ca.evt.{run_id}.>", ordered_consumer=True)
    async for msg in sub.messages:
        event = json.loads(msg.data)
        print(event["kind"], event.get("node") or "")
        if event["kind"] in END:
            break
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "{}"))
