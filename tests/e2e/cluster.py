"""Several bot instances on one PostgreSQL behind haproxy, for end-to-end tests (issue 15).

Why real programs: what must hold between instances (drafts, claims, leases, the gate's stamp)
lives in PostgreSQL and in how a load balancer spreads requests, so the test runs the server
(tests/pg_server.sh), Debian's haproxy in round robin and `python -m bot run` processes in
webhook mode, with the fake Bot API pushing updates through haproxy as Telegram would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from storage.crypto import new_master_key
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import REPO_ROOT, BotProcess
from tests.e2e.support import WAIT, bot_settings, run_cli

HAPROXY = "haproxy"


def needed(tool: str | None, why: str) -> str:
    """The tool's path; without it the test is skipped, except under CI=true (a failure there,
    as .ci/run treats missing PostgreSQL binaries)."""
    if tool:
        return tool
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def haproxy_binary() -> str:
    """Debian's haproxy (in /usr/sbin, often off a user's PATH), or skip / fail as `needed`."""
    found = shutil.which(HAPROXY) or shutil.which(HAPROXY, path="/usr/sbin:/sbin")
    return needed(found, "no haproxy: apt-get install -y haproxy")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-5000:] if log and log.exists() else ""
            raise AssertionError(f"{what} not listening on {port} after {timeout}s\n{text}")
        time.sleep(0.1)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (tests/pg_server.sh); yields the URL of its database."""
    script = REPO_ROOT / "tests" / "pg_server.sh"
    found = subprocess.run(
        ["bash", "-c", f"source {script} && pg_server_bin"], capture_output=True, text=True
    )
    needed(
        found.stdout.strip() if found.returncode == 0 else None,
        "no PostgreSQL binaries (looked in /usr/lib/postgresql/*/bin): apt-get install postgresql",
    )
    started = subprocess.run(
        ["bash", str(script), "start"], capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode == 0, started.stderr
    exports = dict(
        line.removeprefix("export ").replace("'", "").split("=", 1)
        for line in started.stdout.splitlines()
        if line.startswith("export ")
    )
    try:
        yield exports["TEST_DATABASE_URL"]
    finally:
        subprocess.run(["bash", str(script), "stop", exports["PG_SERVER_DIR"]], check=False)


DEPLOYED_CONFIG = REPO_ROOT / "deploy" / "haproxy.cfg"
BY_PERSON = ("option http-buffer-request", "balance hash ", "hash-type ")


def by_person_balancing() -> str:
    """The deployed example's lines that send each person's updates to one instance."""
    lines = [
        line
        for line in DEPLOYED_CONFIG.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(BY_PERSON)
    ]
    assert len(lines) == len(BY_PERSON), lines
    return "\n".join(lines)


class LoadBalancer:
    """haproxy in HTTP mode over the instances' webhook ports, checking /healthz: in round robin
    (any update to any instance, the harder case), or `by_person` as deploy/haproxy.cfg balances
    (a person's updates to one instance); a request refused by a dead instance is sent again to
    another one (redispatch)."""

    def __init__(
        self,
        backends: list[int],
        workdir: Path,
        health: str | None = "/healthz",
        *,
        by_person: bool = False,
    ) -> None:
        self.binary = haproxy_binary()
        self.port = free_port()
        self.config = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        servers = "\n".join(
            f"    server bot{n} 127.0.0.1:{port} check inter 500ms fall 3 rise 2"
            for n, port in enumerate(backends, 1)
        )
        self.config.write_text(
            f"""global
    maxconn 200

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # /healthz reads the database: a loaded test machine may take a while to answer it
    timeout check 3s
    retries 3
    option redispatch 1

frontend telegram
    bind 127.0.0.1:{self.port}
    default_backend bots

backend bots
{by_person_balancing() if by_person else "    balance roundrobin"}
{f"    option httpchk GET {health}" if health else "    # checked by connecting only"}
{servers}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LoadBalancer:
        checked = subprocess.run(
            [self.binary, "-c", "-f", str(self.config)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_listening(self.port, 15, "haproxy", self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram"

    def routes(self) -> bool:
        """haproxy has a backend up: a request without the webhook's secret reaches an instance
        (which refuses it) instead of haproxy's 503."""
        request = urllib.request.Request(self.address, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except urllib.error.HTTPError as error:
            return error.code != 503
        except (urllib.error.URLError, OSError):
            return False


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def updates_handled(port: int) -> float:
    """How many updates the instance on `port` took, from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "archive_bot_updates_total"
    )


SECRET = "cluster-webhook-secret-0123456789"
REGISTERED = "https://bot.example.invalid/telegram"  # what the bots tell Telegram


class Cluster:
    """`instances` bot processes on one database, their webhook ports, and haproxy in front;
    `argv` runs another program in their place (the load test's bare echo bot); `by_person`
    balances as deploy/haproxy.cfg does."""

    def __init__(
        self,
        api: FakeBotApi,
        url: str,
        workdir: Path,
        *,
        instances: int = 2,
        extra: dict[str, str] | None = None,
        argv: list[str] | None = None,
        by_person: bool = False,
    ) -> None:
        self.key = new_master_key()  # every instance opens the same data
        self.ports = [free_port() for _ in range(instances)]
        self.bots: list[BotProcess] = []
        self.env: dict[str, str] = {}
        for n, port in enumerate(self.ports):
            folder = workdir / f"bot{n + 1}"
            folder.mkdir()
            env = bot_settings(api, url, folder, language="en")
            env.update(
                ENCRYPTION_KEYS=self.key,
                WEBHOOK_URL=REGISTERED,
                WEBHOOK_SECRET=SECRET,
                WEBHOOK_LISTEN="127.0.0.1",
                WEBHOOK_PORT=str(port),
                REMINDER_POLL_SECONDS="1",
                QUIET_HOURS="",
            )
            env.update(extra or {})
            self.env = self.env or env
            self.bots.append(BotProcess(env, log_dir=folder, argv=argv))
        self.is_bot = argv is None  # another program has no /healthz and no migrations
        health = "/healthz" if self.is_bot else None
        self.balancer = LoadBalancer(self.ports, workdir, health, by_person=by_person)

    def start(self, api: FakeBotApi) -> None:
        if self.is_bot:
            migrated = run_cli(self.env, "migrate")
            assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        self.balancer.start()
        api.webhook_address = self.balancer.address  # Telegram's POSTs land on haproxy
        for bot, port in zip(self.bots, self.ports, strict=True):
            bot.start()  # one after the other: the first has the older sender_instances row
            if self.is_bot:
                wait_for(lambda port=port: healthy(port), f"instance on {port} healthy", bot)
            else:
                wait_listening(port, 60, "the program", bot.log_path)
        wait_for(lambda: api.webhook_url == REGISTERED, "the webhook registered")
        wait_for(self.balancer.routes, "haproxy routing to the instances")

    def handled(self, api: FakeBotApi) -> list[float]:
        """Updates each instance took, once every update queued so far is counted (an update
        is counted when its last handler returns, a moment after its answer)."""
        delivered = api.updates_queued
        deadline = time.monotonic() + WAIT
        while sum(counts := [updates_handled(port) for port in self.ports]) < delivered:
            assert time.monotonic() < deadline, f"{counts} counted of {delivered} delivered"
            time.sleep(0.05)
        return counts

    def stop(self) -> None:
        for bot in self.bots:
            bot.stop()
        self.balancer.stop()


def wait_for(
    ready: Callable[[], bool], what: str, bot: BotProcess | None = None, timeout: float = 60
) -> float:
    """Seconds until `ready()` is true; fails after `timeout` with the bot's log."""
    start = time.monotonic()
    while not ready():
        if bot is not None and not bot.running:
            raise AssertionError(f"bot exited before {what}:\n{bot.log_text()}")
        if time.monotonic() - start > timeout:
            log = bot.log_text() if bot is not None else ""
            raise AssertionError(f"not {what} within {timeout}s\n{log}")
        time.sleep(0.05)
    return time.monotonic() - start
