"""A team's review group chat the bot was removed from, or may no longer post in, and back.

Telegram tells the bot of its own membership (`my_chat_member`). While the bot cannot post in a
team's review group, the group is kept (its id stays on the team) but marked lost: review cards
go to the team's managers privately (storage.reviews.route), and the reviews already waiting
get private cards (`send_waiting_privately`), since their group card can no longer be acted
on. Being added back (or
/setgroup there) restores the group. Each change is audited once; telling the managers is the
caller's, through the outbox, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, outbox, permissions
from storage.models import Review, ReviewStatus, Staff, Team

# what Telegram's ChatMember statuses mean for posting review cards
CANNOT_POST = frozenset({"left", "kicked"})


@dataclass(frozen=True)
class GroupChange:
    """A review group the bot lost or got back, and whom to tell."""

    team_id: int
    team_name: str
    lost: bool
    managers: tuple[Staff, ...]
    waiting: tuple[int, ...] = ()  # reviews pending when it was lost: their cards go privately


async def send_waiting_privately(session: AsyncSession, change: GroupChange, now: datetime) -> None:
    """Queue the private cards of the reviews whose group card can no longer be pressed."""
    for review_id in change.waiting:
        await outbox.queue_review_cards(session, review_id=review_id, now=now, use_group=False)


def can_post(status: str, *, can_send_messages: bool | None) -> bool:
    """Whether a bot with this membership may post a card: a member or administrator, or a
    restricted member still allowed to send messages."""
    if status in CANNOT_POST:
        return False
    if status == "restricted":
        return bool(can_send_messages)
    return True


async def _managers(session: AsyncSession, team_id: int) -> tuple[Staff, ...]:
    """The team's active managers, else the admins: whoever decides its reviews."""
    for clauses in (permissions.managers_of(team_id), permissions.admins()):
        found = (await session.exec(select(Staff).where(*clauses).order_by(col(Staff.id)))).all()
        if found:
            return tuple(found)
    return ()


async def access_changed(
    session: AsyncSession,
    *,
    chat_id: int,
    status: str,
    can_send_messages: bool | None,
    changed_by_telegram_id: int | None,
    now: datetime,
) -> list[GroupChange]:
    """Record that the bot's membership in `chat_id` changed; the teams whose review group it
    is, where that changes whether cards can go there (nothing for any other chat)."""
    posting = can_post(status, can_send_messages=can_send_messages)
    teams = (await session.exec(select(Team).where(Team.manager_chat_id == chat_id))).all()
    changes = []
    for team in teams:
        assert team.id is not None
        if posting == (team.manager_chat_lost_at is None):
            continue  # already known: e.g. restricted after being removed, or a repeat
        team.manager_chat_lost_at = None if posting else now
        team.updated_at = now
        session.add(team)
        await audit.record(
            session,
            action="team.review_group_restored" if posting else "team.review_group_lost",
            actor_telegram_id=changed_by_telegram_id,
            entity="team",
            entity_id=team.id,
            detail={"chat_id": chat_id, "status": status},
        )
        waiting: tuple[int, ...] = ()
        if not posting:  # the waiting reviews' group cards cannot be pressed any more
            found = await session.exec(
                select(Review.id).where(
                    Review.team_id == team.id, Review.status == ReviewStatus.pending
                )
            )
            waiting = tuple(i for i in found.all() if i is not None)
        managers = await _managers(session, team.id)
        changes.append(GroupChange(team.id, team.name, not posting, managers, waiting))
    return changes
