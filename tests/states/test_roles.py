"""The role model (issue 10): which act needs which role, members' roles in a definition, and
definitions written before roles existed keeping their fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from states.definition import parse_definition
from states.engine import authorize
from states.errors import Refused, RuleId
from states.roles import NEEDS, Act, Role, granted, needed

ROOT = Path(__file__).resolve().parents[2]


def raw() -> dict[str, object]:
    """WTPF-26's definition as data."""
    data = yaml.safe_load((ROOT / "config" / "wtpf26.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_defaults_leave_the_fingerprint_and_the_dump_unchanged() -> None:
    """Unset roles and require_tokens: false are left out of the dump, so a definition's
    fingerprint is what it was before roles existed; set, they are in both."""
    plain = parse_definition(raw(), "wtpf26.yaml")
    explicit = raw()
    explicit["require_tokens"] = False
    assert parse_definition(explicit, "x").fingerprint() == plain.fingerprint()
    dumped = plain.model_dump(mode="json")
    assert "require_tokens" not in dumped
    assert "roles" not in dumped["secretariat"][0]
    strict = raw()
    strict["require_tokens"] = True
    changed = parse_definition(strict, "x")
    assert changed.fingerprint() != plain.fingerprint()
    assert parse_definition(changed.model_dump(mode="json"), "x") == changed


def test_every_act_needs_one_role_and_override_adds_its_own() -> None:
    """The table covers every act; --override adds the 'override' role after the act's own."""
    assert set(NEEDS) == set(Act)
    assert needed(Act.POST) == (Role.POST,)
    assert needed(Act.AMEND, override=True) == (Role.AMEND, Role.OVERRIDE)
    assert needed(Act.FORUM) == (Role.FORUM,)
    assert needed(Act.ERASE) == (Role.REGISTER,)


@pytest.mark.parametrize(("roles", "act", "allowed"), [
    (None, Act.POST, True),
    (["post"], Act.POST, True),
    (["post"], Act.AMEND, False),
    (["amend"], Act.RESHAPE, True),
    (["forum"], Act.FORUM, True),
    (["post"], Act.OUTBOX, False),
])
def test_a_member_acts_in_their_roles(roles: list[str] | None, act: Act, allowed: bool) -> None:
    """Listed roles are all a member holds (none listed: every role); otherwise the 'role'
    rule refuses, naming who holds the role."""
    data = raw()
    member = {"id": "ana", "name": "Ana", "email": "ana@example.org"}
    if roles is not None:
        member["roles"] = roles  # type: ignore[assignment]
    data["secretariat"] = [member, {"id": "ben", "name": "Ben", "email": "ben@example.org"}]
    definition = parse_definition(data, "x")
    assert granted(definition.secretariat[1].roles) == frozenset(Role)
    if allowed:
        assert authorize(definition, "ana", needed(act)).id == "ana"
        return
    with pytest.raises(Refused, match="ask a member who holds it: ben") as caught:
        authorize(definition, "ana", needed(act))
    assert caught.value.rule is RuleId.ROLE


def test_an_unknown_role_is_a_definition_error() -> None:
    """A misspelt role is refused when the definition is read, naming the valid ones."""
    data = raw()
    data["secretariat"] = [{"id": "ana", "name": "Ana", "email": "ana@example.org",
                            "roles": ["posting"]}]
    with pytest.raises(Exception, match="post"):
        parse_definition(data, "x")
