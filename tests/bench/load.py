"""Load test (issue 15, item 4): hundreds of staff at once against one or two bot instances.

Each run starts a throwaway PostgreSQL server, haproxy balancing as deploy/haproxy.cfg does
(each person's updates to one instance) and `python -m bot run` processes in webhook mode
(tests/e2e/cluster.py), with the fake Bot API pushing every update through haproxy as Telegram
does and refusing what Telegram refuses (429 beyond 30 messages a second for the bot, or 3 a
second in one chat). Staff are seeded in teams of 20: a manager and 19 salespeople, each
salesperson with one customer of their own waiting for review. Then for `--seconds` every
simulated person works as people do, one step every `--think` seconds or so:

- salespeople pick a flow at random: /new to the end (8 updates), /visit to the end with a
  location (13), or /find of their customer (1);
- managers open /review, open the oldest waiting record and approve it (3).

Every update's latency is the time from Telegram having it (queued at the fake) to the answer
the person waits for reaching Telegram: the question after an answer, the card after a tap.
Printed per run: updates a second, p50/p95/p99 latency, errors (the bot apologising, a webhook
request not answered 200, a 429 from the fake), updates lost (no answer within 15 s)
and off script (an answer came, but not the one expected). The reference, measured in the
same run: a bare python-telegram-bot echo bot (tests/bench/echo_webhook.py) behind the same
haproxy under the same load, one answer per update.

Why people think for 40 s on average: Telegram lets one bot send about 30 messages a second
over all chats, however many instances run it, and a step costs the bot 1.6 of them (the
question answered is edited to show the answer, the next one is sent), so no bot answers more
than about 18 steps a second; 500 people a step every 40 s is 12.5 a second, two thirds of that.
A smaller `--think` measures the ceiling (answers wait in the rate limiter, Telegram refuses
nothing).

    .venv/bin/python -m tests.bench.load [--staff 500] [--seconds 60] [--think 20]
        [--instances 1 2] [--runs 1] [--no-reference]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from storage import audit, customers
from storage import staff as staff_store
from storage.crypto import Keyring, decode_master_key
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.models import Staff
from tests.auxil.telegram_rules import SENDING
from tests.e2e.cluster import Cluster, postgres_server, updates_handled
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.support import TOKEN

JSON = dict[str, Any]
TEAM_SIZE = 20  # a manager and 19 salespeople
FIRST_ID = 910_001  # after ADMIN_ID (900_001), the admin the bots are configured with
APOLOGY = "something went wrong"  # bot.errors' apology, in English
PAUSE_WHEN_NOTHING = 10.0  # a manager with nothing to review looks again this much later


@dataclass(frozen=True)
class Step:
    """One update and the answer it waits for: `say` text, `tap` a button whose label contains
    `value`, or share a `location`; `edited`: the answer may be an edit of a message."""

    kind: str
    value: str
    expect: str
    edited: bool = False
    ends: str | None = None  # another answer that ends the flow early, as expected


def new_flow(name: str) -> list[Step]:
    return [
        Step("say", "/new", "Is the customer a company or an individual?"),
        Step("tap", "Company", "What is the customer's full name?"),
        Step("say", name, "Phone numbers?"),
        Step("tap", "Skip the remaining optional questions", "Customer class?"),
        Step("tap", "B important", "Which pipeline stage"),
        Step("tap", "Yellow apple", "How did we get this customer?"),
        Step("tap", "Visit", "The essentials are in"),
        Step("tap", "Save now", "submitted for review as"),
    ]


def visit_flow(customer: str) -> list[Step]:
    return [
        Step("say", "/visit", "Which customer did you visit?"),
        Step("tap", customer, "How did you meet the customer?"),
        Step("tap", "On site", "When was the visit?"),
        Step("tap", "Skip »", "Share your location"),
        Step("location", "", "What was the purpose of the visit?"),
        Step("say", "Present the new moulding line", "What did you discuss?"),
        Step("tap", "Skip »", "What does the customer need"),
        Step("say", "Delivery within 30 days", "What came of it"),
        Step("tap", "Skip »", "Has the customer's pipeline stage changed?"),
        Step("tap", "No change", "Next follow-up date?"),
        Step("tap", "Skip »", "Any photos, documents or voice notes?"),
        Step("tap", "✅ Done", "Visit: please check"),
        Step("tap", "✅ Submit", "Visit logged"),
    ]


def find_flow(customer: str) -> list[Step]:
    return [Step("say", f"/find {customer}", "found")]


def review_flow() -> list[Step]:
    return [
        Step("say", "/review", "awaiting review", ends="Nothing awaits your review"),
        Step("tap", "🔎 1.", "🔔 Review", edited=True),
        Step("tap", "✅ Approve", "✅ Approved by", edited=True),
    ]


def pseudo_name(rng: random.Random) -> str:
    """Two random words: no two names alike enough for the similar-name warning."""
    words = ("".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 9))) for _ in "ab")
    return " ".join(w.capitalize() for w in words)


@dataclass
class Figures:
    """What one run measured."""

    latencies: list[float] = field(default_factory=list)
    by_step: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    lost: int = 0
    off_script: int = 0
    flows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0
    too_many: int = 0
    webhook_failures: int = 0
    handled: list[float] = field(default_factory=list)
    queued: int = 0
    refusals: list[tuple[str, str]] = field(default_factory=list)
    sent: int = 0  # messages sent or edited: what Telegram's 30 a second counts
    in_handler: str = ""  # the instances' own handler latency (their /metrics)

    def line(self, label: str) -> str:
        ordered = sorted(self.latencies) or [0.0]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        errors = self.errors + self.too_many + self.webhook_failures
        return (
            f"    {label:<22} {rate:7.1f}/s  p50 {pct(0.50):6.1f} ms  p95 {pct(0.95):6.1f} ms  "
            f"p99 {pct(0.99):6.1f} ms  errors {errors} (apologies {self.errors}, 429 "
            f"{self.too_many}, webhook {self.webhook_failures})  lost {self.lost}  "
            f"off script {self.off_script}  updates {len(self.latencies)}  messages "
            f"{self.sent / self.seconds if self.seconds else 0:.1f}/s"
        )

    def slowest_steps(self, count: int = 4) -> str:
        """The steps with the highest p95: where the tail comes from."""
        p95 = {
            name: sorted(times)[int(0.95 * (len(times) - 1))] * 1000
            for name, times in self.by_step.items()
            if len(times) >= 5
        }
        worst = sorted(p95, key=p95.__getitem__, reverse=True)[:count]
        return ", ".join(
            f"{name} {p95[name]:.0f} ms (n={len(self.by_step[name])})" for name in worst
        )


class Chats:
    """Every message event of the fake, handed to the waiting person's queue on our loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queues: dict[int, asyncio.Queue[JSON]] = defaultdict(asyncio.Queue)

    def listener(self, event: JSON) -> None:
        event["reached_telegram"] = time.perf_counter()  # now, not when our busy loop gets to it
        self.loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: JSON) -> None:
        self.queues[int(event["chat"]["id"])].put_nowait(event)


class SimulatedPerson:
    """One member of staff at the keyboard: steps through flows, thinking between updates."""

    def __init__(
        self,
        api: FakeBotApi,
        chats: Chats,
        figures: Figures,
        user: JSON,
        *,
        think: float,
        timeout: float,
        rng: random.Random,
        echo: bool,
    ) -> None:
        self.api, self.chats, self.figures, self.user = api, chats, figures, user
        self.think, self.timeout, self.rng, self.echo = think, timeout, rng, echo
        self.chat_id = int(user["id"])
        self.first = True

    async def pause(self, until: float) -> None:
        """Think before the next step (not past the end); the first wait spreads the starts."""
        low, high = (0.0, 1.0) if self.first else (0.5, 1.5)  # mean `think` once going
        self.first = False
        thinking = self.rng.uniform(low, high) * self.think
        await asyncio.sleep(max(0.0, min(thinking, until - time.monotonic())))

    def _message_with(self, label: str) -> JSON | None:
        for message in reversed(self.api.sent_messages(self.chat_id)):
            if message.get("deleted"):
                continue
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if self.echo or label in button["text"]:
                        return {"message": message, "data": button["callback_data"]}
        return None

    def _send(self, step: Step) -> bool:
        if step.kind == "say":
            self.api.send_text(self.user, step.value)
        elif step.kind == "location":
            self.api.send_location(self.user, 29.86821, 121.54399)
        else:
            found = self._message_with(step.value)
            if found is None:
                return False
            self.api.press_button(self.user, found["message"], found["data"])
        return True

    async def step(self, step: Step) -> str | None:
        """Send one update and wait for its answer: the answer's text, None if none came."""
        queue = self.chats.queues[self.chat_id]
        while not queue.empty():  # what came while thinking (a notice, say) is not an answer
            self._look_at(queue.get_nowait())
        started = time.perf_counter()
        if not self._send(step):
            self.figures.off_script += 1
            return None
        answered = False
        deadline = started + self.timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            answered = True
            self._look_at(event)
            text = event.get("text") or ""
            wanted = (step.expect, step.ends) if step.ends else (step.expect,)
            if (event["event"] == "sent" or step.edited or self.echo) and (
                self.echo or any(w in text for w in wanted)
            ):
                took = event.get("reached_telegram", time.perf_counter()) - started
                self.figures.latencies.append(took)
                self.figures.by_step[f"{step.kind} {step.value[:20]!r}"].append(took)
                return text
        if answered:
            self.figures.off_script += 1
        else:
            self.figures.lost += 1
        return None

    def _look_at(self, event: JSON) -> None:
        if APOLOGY in (event.get("text") or "").lower():
            self.figures.errors += 1

    async def play(self, flow_name: str, steps: list[Step], until: float) -> None:
        for step in steps:
            await self.pause(until)
            if time.monotonic() >= until:
                return
            answer = await self.step(step)
            if answer is None:
                await self.step(Step("say", "/cancel", ""))  # start clean: drop the draft
                return
            if step.ends and step.ends in answer and not self.echo:
                return
        self.figures.flows[flow_name] += 1


async def salesperson(person: SimulatedPerson, customer: str, until: float) -> None:
    while time.monotonic() < until:
        choice = person.rng.choices(("new", "visit", "find"), weights=(4, 4, 2))[0]
        if choice == "new":
            steps = new_flow(pseudo_name(person.rng))
        elif choice == "visit":
            steps = visit_flow(customer)
        else:
            steps = find_flow(customer)
        await person.play(choice, steps, until)


async def manager(person: SimulatedPerson, until: float) -> None:
    while time.monotonic() < until:
        done_before = person.figures.flows["review"]
        await person.play("review", review_flow(), until)
        if person.figures.flows["review"] == done_before:  # nothing to review: later again
            await asyncio.sleep(PAUSE_WHEN_NOTHING)


def people(staff: int) -> Iterator[tuple[int, str, str, str, str | None]]:
    """(telegram id, name, role, team, the customer of their own) of every simulated person."""
    rng = random.Random(15)
    for n in range(staff):
        role = "manager" if n % TEAM_SIZE == 0 else "salesperson"
        customer = pseudo_name(rng) if role == "salesperson" else None
        yield FIRST_ID + n, f"Staff {n}", role, f"Team {n // TEAM_SIZE + 1}", customer


async def seed(url: str, key: str, staff: int) -> dict[int, str]:
    """Teams, staff, and each salesperson's customer waiting for review (with its card)."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    keyring = Keyring([decode_master_key(key)])
    audit.use_keyring(sessions, keyring)
    own: dict[int, str] = {}
    try:
        async with unit_of_work(sessions) as session:
            for telegram_id, name, role, team_name, customer in people(staff):
                team = await staff_store.get_or_create_team(session, team_name, actor=None)
                member = Staff(
                    telegram_id=telegram_id,
                    display_name=name,
                    role=role,
                    team_id=team.id,
                    language="en",
                )
                session.add(member)
                await session.flush()
                if customer is not None:
                    await customers.create_customer(
                        session,
                        keyring=keyring,
                        actor=member,
                        values={"kind": "company", "name": customer, "customer_class": "B"},
                    )
                    own[telegram_id] = customer
    finally:
        await engine.dispose()
    return own


@contextmanager
def running(
    api: FakeBotApi,
    url: str,
    workdir: Path,
    instances: int,
    echo: bool,
    extra: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    argv = [sys.executable, "-m", "tests.bench.echo_webhook"] if echo else None
    # the bots' own schedulers run as in production; the reminder poll every 30 s
    cluster = Cluster(
        api,
        url,
        workdir,
        instances=instances,
        argv=argv,
        extra={"REMINDER_POLL_SECONDS": "30", **(extra or {})},
        by_person=True,  # as deploy/haproxy.cfg: a person's quick taps paced by one instance
    )
    try:
        cluster.start(api)
        yield cluster
    finally:
        cluster.stop()


async def drive(
    api: FakeBotApi,
    own: dict[int, str],
    staff: int,
    seconds: float,
    think: float,
    answer_within: float,
    echo: bool,
) -> Figures:
    figures = Figures()
    chats = Chats(asyncio.get_running_loop())
    api.listeners.append(chats.listener)
    rng = random.Random(4)
    started = time.monotonic()
    until = started + seconds
    tasks = []
    for telegram_id, name, role, _team, _customer in people(staff):
        user = api.user(telegram_id, name, language_code="en")
        person = SimulatedPerson(
            api,
            chats,
            figures,
            user,
            think=think,
            timeout=answer_within,
            rng=random.Random(rng.random()),
            echo=echo,
        )
        if role == "manager":
            tasks.append(manager(person, until))
        else:
            tasks.append(salesperson(person, own.get(telegram_id, ""), until))
    await asyncio.gather(*tasks)
    figures.seconds = time.monotonic() - started
    api.listeners.remove(chats.listener)
    return figures


def handler_buckets(port: int) -> dict[float, float]:
    """The instance's own handler-latency histogram: cumulative updates per bucket bound."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "archive_bot_update_seconds_bucket"
    }


def handler_p95(buckets: list[dict[float, float]]) -> str:
    """The bucket bound under which 95% of the handlers finished, over all instances: the time
    inside the bot, without the webhook, haproxy, the queue and Telegram's side."""
    merged: dict[float, float] = defaultdict(float)
    for one in buckets:
        for bound, count in one.items():
            merged[bound] += count
    total = merged.get(float("inf"), 0.0)
    if not total:
        return "none"
    bound = next(b for b in sorted(merged) if merged[b] >= 0.95 * total)
    within = {b: merged[b] / total for b in (0.05, 0.1, 0.25) if b in merged}
    shares = ", ".join(f"{share:.0%} within {b * 1000:.0f} ms" for b, share in within.items())
    return f"p95 under {bound * 1000:.0f} ms ({shares})"


def watch_refusals(api: FakeBotApi) -> list[tuple[str, str]]:
    """Each 429 the fake answers, as (method, "overall" or "chat"): which limit was hit."""
    refusals: list[tuple[str, str]] = []
    check = api.flood.check

    def watched(method: str, params: JSON) -> int | None:
        overall = len(api.flood._all) >= api.flood.overall
        wait = check(method, params)
        if wait is not None:
            why = "overall" if overall else "chat"
            refusals.append((method, why))
        return wait

    api.flood.check = watched  # type: ignore[method-assign]
    return refusals


def one_run(
    staff: int,
    seconds: float,
    think: float,
    instances: int,
    echo: bool,
    round_trip: float = 0.0,
    extra: dict[str, str] | None = None,
) -> Figures:
    timeout = 15.0
    with (
        tempfile.TemporaryDirectory(prefix="load-") as scratch,
        postgres_server() as url,
        FakeBotApi(TOKEN) as api,
    ):
        api.flood.enabled = True  # Telegram's limits: 30 a second for the bot, 3 in a chat
        api.round_trip = round_trip
        refusals = watch_refusals(api)
        with running(api, url, Path(scratch), instances, echo, extra) as cluster:
            own = {} if echo else asyncio.run(seed(url, cluster.key, staff))
            figures = asyncio.run(drive(api, own, staff, seconds, think, timeout, echo))
            time.sleep(1)  # the last updates counted by the instances
            if not echo:
                figures.handled = [updates_handled(port) for port in cluster.ports]
                figures.in_handler = handler_p95([handler_buckets(p) for p in cluster.ports])
            figures.queued = api.updates_queued
            figures.too_many = api.flood.refused
            figures.refusals = refusals
            figures.webhook_failures = sum(1 for d in api.deliveries if d.status != 200)
            figures.sent = sum(1 for method, _ in api.calls if method.lower() in SENDING)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--staff", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=40.0, help="mean seconds between steps")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--round-trip-ms", type=float, default=0.0, help="each Telegram call's round trip"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a bot setting"
    )
    args = parser.parse_args()
    print(
        f"== {args.staff} staff for {args.seconds:.0f} s, a step every {args.think:.0f} s or "
        f"so (offered {args.staff / args.think:.0f} updates/s); PostgreSQL, haproxy, webhook; "
        f"Telegram round trip {args.round_trip_ms:.0f} ms; settings {args.set or 'as shipped'}"
    )
    p95s: dict[str, list[float]] = defaultdict(list)
    for run in range(args.runs):
        configs = [] if args.no_reference else [("echo (PTB alone)", 1, True)]
        configs += [(f"bot x{n}", n, False) for n in args.instances]
        for label, instances, echo in configs:
            extra = dict(item.split("=", 1) for item in args.set)
            figures = one_run(
                args.staff,
                args.seconds,
                args.think,
                instances,
                echo,
                round_trip=args.round_trip_ms / 1000,
                extra=extra,
            )
            print(figures.line(label), flush=True)
            if figures.refusals:
                print(f"      429s (method, limit): {figures.refusals[:10]}")
            if figures.handled:
                print(
                    f"      by instance {[int(h) for h in figures.handled]}, queued "
                    f"{figures.queued}, flows done {dict(figures.flows)}",
                    flush=True,
                )
                print(f"      slowest steps (p95): {figures.slowest_steps()}", flush=True)
                print(f"      inside the handlers: {figures.in_handler}", flush=True)
            ordered = sorted(figures.latencies) or [0.0]
            p95s[label].append(ordered[int(0.95 * (len(ordered) - 1))] * 1000)
        if run < args.runs - 1:
            print("    --")
    print(
        "    p95 (median of runs, ms):",
        {k: round(statistics.median(v), 1) for k, v in p95s.items()},
    )
    if "echo (PTB alone)" in p95s:
        ref = statistics.median(p95s["echo (PTB alone)"])
        for label, values in p95s.items():
            if label.startswith("bot"):
                print(f"    {label}: p95 {statistics.median(values) / ref:.2f}x the echo's")
    if "bot x1" in p95s and "bot x2" in p95s:
        two, one = statistics.median(p95s["bot x2"]), statistics.median(p95s["bot x1"])
        print(f"    two instances / one instance, p95: {two / one:.2f}")


if __name__ == "__main__":
    main()
