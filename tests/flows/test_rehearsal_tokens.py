"""The rehearsal on a process that requires tokens (issue 10): its scripted secretariat issues
its own token and every act it takes carries it, through the real flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.storage import open_store
from tests.flows.test_rehearsal import ROOT, rehearse

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def test_a_rehearsal_requiring_tokens_issues_its_own_and_acts_with_it(tmp_path: Path) -> None:
    """`require_tokens: true`: the rehearsal issues its member's token first, each of its acts
    records that token, none is refused for want of one, and the process closes."""
    text = (ROOT / "tests" / "definitions" / "windowless.yaml").read_text(encoding="utf-8")
    definition = tmp_path / "tokens.yaml"
    definition.write_text(text + "\nrequire_tokens: true\n", encoding="utf-8")
    database = f"sqlite:///{tmp_path / 'kept.db'}"

    rehearse(str(definition), "--transcript", str(tmp_path / "t.txt"), "--database", database)

    with open_store(database) as store:
        log = store.audit("sdr-28-rehearsal")
        (token,) = store.tokens.tokens("sdr-28-rehearsal")
        final = store.get("sdr-28-rehearsal").state
    assert [e.kind for e in log if e.kind == "token-issued"] == ["token-issued"]
    assert not [e for e in log if e.kind == "refusal" and e.inputs.get("rule") == "token"]
    posts = [e for e in log if e.kind == "transition" and e.actor == "sam"]
    assert posts
    assert {e.inputs["via"]["token"] for e in posts} == {token.token_id}
    # posts through the action form; the forum's agenda straight through the shell, as the CLI
    assert {e.inputs["via"]["channel"] for e in posts} == {"action form", "cli"}
    assert final["regions"]["main"] == "closed"
