"""deploy/haproxy.cfg, the example balancer for several instances: haproxy accepts it, and it
sends each person's updates (messages and button presses alike) to one instance while spreading
the people over all of them. The load test balances with the same lines (tests/e2e/cluster.py)."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.cluster import DEPLOYED_CONFIG, LoadBalancer, haproxy_binary

PEOPLE = [910_001 + n for n in range(12)]


def test_haproxy_accepts_the_example_as_it_is() -> None:
    checked = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(DEPLOYED_CONFIG)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


class Instance(ThreadingHTTPServer):
    """Stands in for a bot instance's webhook: remembers whose updates reached it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Webhook)
        self.people: list[int] = []


class Webhook(BaseHTTPRequestHandler):
    server: Instance

    def do_POST(self) -> None:
        update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = update.get("callback_query") or update.get("message")
        self.server.people.append(query["from"]["id"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    servers = [Instance(), Instance()]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def update(number: int, person: int) -> dict[str, object]:
    """As Telegram sends them: a button press carries the bot's message (from the bot) after
    the person; a message's text may itself look like JSON."""
    if number % 2:
        return {
            "update_id": number,
            "message": {
                "message_id": number,
                "from": {"id": person, "is_bot": False, "first_name": "A"},
                "chat": {"id": person, "type": "private"},
                "text": '{"from": {"id": 1}}',
            },
        }
    return {
        "update_id": number,
        "callback_query": {
            "id": str(number),
            "from": {"id": person, "is_bot": False, "first_name": "A"},
            "message": {"message_id": 1, "from": {"id": 42, "is_bot": True}},
            "chat_instance": "1",
            "data": "x",
        },
    }


def test_each_persons_updates_reach_one_instance(instances: list[Instance], tmp_path: Path) -> None:
    balancer = LoadBalancer(
        [server.server_address[1] for server in instances], tmp_path, None, by_person=True
    ).start()
    try:
        for number in range(96):  # each person twice in a row: round robin would part them
            body = json.dumps(update(number, PEOPLE[number // 2 % len(PEOPLE)])).encode()
            request = urllib.request.Request(
                balancer.address, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
    finally:
        balancer.stop()
    where: dict[int, set[int]] = defaultdict(set)
    for n, server in enumerate(instances):
        for person in server.people:
            where[person].add(n)
    assert sorted(where) == PEOPLE
    assert all(len(places) == 1 for places in where.values()), dict(where)
    assert all(server.people for server in instances)  # the people are spread over both
    assert sum(len(server.people) for server in instances) == 96
