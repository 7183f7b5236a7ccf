"""The load test (tests/bench/load.py) in small: its people follow the bot's real flows.

A few staff for a few seconds against two instances behind haproxy on PostgreSQL, and against
the bare echo bot it compares with: every update answered as the script expects, nothing lost,
no error, Telegram's limits kept, each instance taking its share of the updates. The figures
themselves come from the full run (500 staff, 60 s), printed by the benchmark.
"""

from __future__ import annotations

from tests.bench.load import one_run
from tests.e2e.cluster import haproxy_binary


def test_a_few_staff_on_two_instances_follow_every_flow_without_loss() -> None:
    haproxy_binary()  # skipped without haproxy (a failure under CI=true)
    figures = one_run(staff=10, seconds=12, think=1.5, instances=2, echo=False)
    assert figures.latencies, "no update was answered"
    assert (figures.lost, figures.off_script, figures.errors) == (0, 0, 0), figures.line("x2")
    assert (figures.too_many, figures.webhook_failures) == (0, 0), figures.refusals
    assert sum(figures.handled) == figures.queued, (figures.handled, figures.queued)
    assert all(h > 0 for h in figures.handled), figures.handled  # round robin: both took some
    assert figures.flows["find"] + figures.flows["new"] + figures.flows["review"] > 0


def test_the_echo_reference_answers_every_update() -> None:
    haproxy_binary()
    figures = one_run(staff=4, seconds=4, think=0.5, instances=1, echo=True)
    assert len(figures.latencies) >= 4
    assert (figures.lost, figures.off_script, figures.errors) == (0, 0, 0), figures.line("echo")
