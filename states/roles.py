"""Who may do what (issue 10): the secretariat's roles and which act needs which role.

Pure data: the definition lists each member's ``roles`` (all of them when none are listed, so
a definition written before roles existed keeps working); the shell asks ``needed`` which roles
an act takes and records the ``Via`` (member, role, channel, flow run) in the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    """A power a secretariat member may hold over a process."""

    POST = "post"
    """Post a draft or the final report (and their later versions), move draft Opinions."""
    AMEND = "amend"
    """Move a date, reshape the meetings or revise the definition."""
    OVERRIDE = "override"
    """Set aside an overridable rule (always with a reason), on top of the act's own role."""
    REGISTER = "register"
    """Manage the registers (experts, contributions) and members' tokens; erase personal data."""
    OUTBOX = "outbox"
    """Queue a failed or uncertain message again (it may arrive twice)."""
    FORUM = "forum"
    """Take the forum's agenda and record the outcome of draft Opinions."""


ALL_ROLES: frozenset[Role] = frozenset(Role)


class Act(StrEnum):
    """What a person asks prepflow to do, as far as who may do it goes."""

    POST = "post a document"
    DRAFT_VERSION = "post a further version of a draft"
    OPINION = "add or move a draft Opinion"
    AMEND = "move a date"
    RESHAPE = "reshape the process (meetings, definition)"
    FORUM = "take the forum's agenda or record an Opinion's outcome"
    REGISTER = "change the register"
    ERASE = "erase a person's data"
    OUTBOX = "retry a message"
    TOKENS = "issue or revoke a member's token"


#: The one table of which role each act takes (``--override`` adds Role.OVERRIDE).
NEEDS: dict[Act, Role] = {
    Act.POST: Role.POST,
    Act.DRAFT_VERSION: Role.POST,
    Act.OPINION: Role.POST,
    Act.AMEND: Role.AMEND,
    Act.RESHAPE: Role.AMEND,
    Act.FORUM: Role.FORUM,
    Act.REGISTER: Role.REGISTER,
    Act.ERASE: Role.REGISTER,
    Act.OUTBOX: Role.OUTBOX,
    Act.TOKENS: Role.REGISTER,
}


def granted(roles: list[Role] | None) -> frozenset[Role]:
    """The roles a member listed with ``roles`` holds (None, not listed: every role)."""
    return ALL_ROLES if roles is None else frozenset(roles)


def needed(act: Act, override: bool = False) -> tuple[Role, ...]:
    """The roles ``act`` takes, its own first (the one the audit entry names)."""
    own = NEEDS[act]
    return (own, Role.OVERRIDE) if override and own is not Role.OVERRIDE else (own,)


class Channel(StrEnum):
    """How an act reached prepflow."""

    CLI = "cli"
    ACTION_FORM = "action form"
    WAITING_STEP = "waiting step"


@dataclass(frozen=True)
class Via:
    """Who acted, in which role, through which channel (and Prefect flow run): what each
    audit entry of an act records under ``inputs['via']``, refusals included."""

    member: str
    role: Role
    channel: Channel
    flow_run_id: str | None = None
    token: str | None = None
    """The id (never the secret) of the token presented, when one was."""

    def doc(self) -> dict[str, Any]:
        """As stored in the audit entry's inputs (hashed with it)."""
        body: dict[str, Any] = {"member": self.member, "role": self.role.value,
                                "channel": self.channel.value,
                                "flow_run_id": self.flow_run_id}
        if self.token is not None:
            body["token"] = self.token
        return body
