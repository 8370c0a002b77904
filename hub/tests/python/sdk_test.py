"""The official Python SDK (centrifuge-python 0.7, PyPI, unchanged) against a real chorus-hub.

Run by scripts/test for JSON and for Protobuf (`--protocol`), on the memory engine and, with
CHORUS_SDK_REDIS set, on the Redis engine: connect, subscribe, publish, history, presence and
recovery after a forced reconnect. Everything talks to 127.0.0.1; the hub is started here
from a Centrifugo-style config and stopped at the end. Each wait is bounded, so a broken hub
fails the run instead of hanging it.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

SECRET = "py-sdk-secret"
API_KEY = "py-sdk-api-key"
WAIT = 10.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: dict) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, binary: str):
        self.port = free_port()
        config = {
            "http_server": {"address": "127.0.0.1", "port": self.port},
            "log": {"level": "warn"},
            "client": {"token": {"hmac_secret_key": SECRET}},
            "http_api": {"key": API_KEY},
            "channel": {
                "namespaces": [
                    {
                        "name": "chat",
                        "presence": True,
                        "join_leave": True,
                        "history_size": 100,
                        "history_ttl": "300s",
                        "force_recovery": True,
                        "allow_subscribe_for_client": True,
                        "allow_publish_for_subscriber": True,
                        "allow_presence_for_subscriber": True,
                        "allow_history_for_subscriber": True,
                    }
                ]
            },
        }
        redis = os.environ.get("CHORUS_SDK_REDIS")
        if redis:
            config["engine"] = {
                "type": "redis",
                # Several addresses, separated by spaces, shard the channels.
                "redis": {"address": redis.split(), "prefix": f"chorus-py-{os.getpid()}-{self.port}"},
            }
        self.dir = tempfile.TemporaryDirectory(prefix="chorus-py-sdk-")
        path = os.path.join(self.dir.name, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.proc = subprocess.Popen([binary, "--config", path])
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"chorus-hub exited with {self.proc.returncode}")
            time.sleep(0.1)
        self.url = f"ws://127.0.0.1:{self.port}/connection/websocket"

    def api(self, method: str, body: dict) -> dict:
        req = urllib.request.Request(
            f"{self.base}/api/{method}",
            data=json.dumps(body).encode(),
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.dir.cleanup()


class Recorder(SubscriptionEventHandler):
    def __init__(self, decode):
        self.decode = decode
        self.publications = []
        self.subscribed = []
        self.changed = asyncio.Event()

    async def on_publication(self, ctx):
        self.publications.append((self.decode(ctx.pub.data), ctx.pub.offset))
        self.changed.set()

    async def on_subscribed(self, ctx):
        self.subscribed.append(ctx)
        self.changed.set()


async def until(cond, what: str):
    deadline = asyncio.get_running_loop().time() + WAIT
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def main(hub: Hub, protobuf: bool) -> None:
    def payload(doc):
        return json.dumps(doc).encode() if protobuf else doc

    def decode(data):
        return json.loads(data) if protobuf else data

    tag = "protobuf" if protobuf else "json"
    channel = f"chat:py-{tag}"
    user = f"py-{tag}"

    class Events(ClientEventHandler):
        connected = []

        async def on_connected(self, ctx):
            self.connected.append(ctx)

    events = Events()
    client = Client(
        hub.url,
        events=events,
        token=jwt({"sub": user, "exp": int(time.time()) + 600}),
        use_protobuf=protobuf,
        min_reconnect_delay=1.5,
        max_reconnect_delay=2.0,
        proxy=None,
    )
    recorder = Recorder(decode)
    sub = client.new_subscription(channel, events=recorder)
    await client.connect()
    await client.ready(WAIT)
    assert len(events.connected[0].client) > 10, events.connected
    print(f"ok: {tag}: connected as {events.connected[0].client}")

    await sub.subscribe()
    await sub.ready(WAIT)
    await sub.publish(payload({"n": 1}))
    await until(lambda: len(recorder.publications) >= 1, "own publication")
    assert recorder.publications == [({"n": 1}, 1)], recorder.publications
    print(f"ok: {tag}: subscribe and publish")

    history = await sub.history(limit=10)
    got = [(decode(p.data), p.offset) for p in history.publications]
    assert got == [({"n": 1}, 1)], got
    print(f"ok: {tag}: history")

    presence = await sub.presence()
    users = sorted(info.user for info in presence.clients.values())
    assert users == [user], users
    stats = await sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (1, 1), stats
    print(f"ok: {tag}: presence")

    # Forced reconnect (3011): two publications while away come back through recovery.
    hub.api("disconnect", {"user": user, "disconnect": {"code": 3011, "reason": "reconnect"}})
    await until(lambda: client.state.value != "connected", "the disconnect")
    hub.api("publish", {"channel": channel, "data": {"n": 2}})
    hub.api("publish", {"channel": channel, "data": {"n": 3}})
    await until(lambda: len(recorder.subscribed) >= 2, "resubscription")
    again = recorder.subscribed[-1]
    assert again.was_recovering and again.recovered, again
    await until(lambda: len(recorder.publications) >= 3, "recovered publications")
    await asyncio.sleep(0.2)
    assert recorder.publications == [({"n": 1}, 1), ({"n": 2}, 2), ({"n": 3}, 3)], recorder.publications
    print(f"ok: {tag}: recovery after a forced reconnect, no gap, no duplicate")
    await client.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["json", "protobuf"], default="json")
    args = parser.parse_args()
    hub = Hub(os.environ["CHORUS_HUB_BIN"])
    try:
        asyncio.run(asyncio.wait_for(main(hub, args.protocol == "protobuf"), 60))
    finally:
        hub.stop()
    print(f"centrifuge-python ({args.protocol}): all scenarios passed")
    sys.exit(0)
