"""One settings object: every documented PREPFLOW_* variable still takes effect, and address
masking in logs happens once, in a filter."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flows.addresses import get_logger, mask_email, valid_email
from flows.cli.app import main
from flows.settings import Settings, SmtpTarget, load_settings
from states.errors import InputError

#: Every variable README.md documents (and the few more the code reads), with a value and
#: where it must land.
DOCUMENTED = [
    ("PREPFLOW_DATABASE_URL", "sqlite:///elsewhere.db", ("database", "url"), "sqlite:///elsewhere.db"),
    ("PREPFLOW_SMTP_HOST", "smtp.example.org", ("smtp", "host"), "smtp.example.org"),
    ("PREPFLOW_SMTP_PORT", "2525", ("smtp", "port"), 2525),
    ("PREPFLOW_SMTP_USERNAME", "wtpf", ("smtp", "username"), "wtpf"),
    ("PREPFLOW_SMTP_PASSWORD_BLOCK", "smtp-password", ("smtp", "password_block"), "smtp-password"),
    ("PREPFLOW_SMTP_STARTTLS", "true", ("smtp", "starttls"), True),
    ("PREPFLOW_SMTP_USE_TLS", "true", ("smtp", "use_tls"), True),
    ("PREPFLOW_SMTP_VALIDATE_CERTS", "false", ("smtp", "validate_certs"), False),
    ("PREPFLOW_SMTP_SENDER", "WTPF Secretariat <wtpf@itu.int>", ("smtp", "sender"),
     "WTPF Secretariat <wtpf@itu.int>"),
    ("PREPFLOW_SMTP_CONCURRENCY", "3", ("smtp", "concurrency"), 3),
    ("PREPFLOW_SMTP_TIMEOUT", "7.5", ("smtp", "timeout"), 7.5),
    ("PREPFLOW_SMTP_MAX_ATTEMPTS", "9", ("smtp", "max_attempts"), 9),
    ("PREPFLOW_SMTP_BACKOFF_SECONDS", "5", ("smtp", "backoff_seconds"), 5.0),
    ("PREPFLOW_SMTP_STALE_AFTER_SECONDS", "120", ("smtp", "stale_after_seconds"), 120.0),
    ("PREPFLOW_SMTP_UNCERTAIN", "hold", ("smtp", "uncertain"), "hold"),
    ("PREPFLOW_PREFECT_DELIVER_LIMIT", "200", ("prefect", "deliver_limit"), 200),
    ("PREPFLOW_AUDIT_WITNESS", "/srv/witness.jsonl", ("audit", "witness"),
     Path("/srv/witness.jsonl")),
    ("PREPFLOW_AUDIT_KEY_BLOCK", "audit-key", ("audit", "key_block"), "audit-key"),
]


@pytest.mark.parametrize(("name", "value", "path", "expected"), DOCUMENTED,
                         ids=[d[0] for d in DOCUMENTED])
def test_each_documented_variable_still_takes_effect(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, path: tuple[str, str],
        expected: object) -> None:
    """Setting the flat variable changes the nested field, and nothing else."""
    monkeypatch.setenv(name, value)
    settings = load_settings()
    section, field = path
    assert getattr(getattr(settings, section), field) == expected
    default = Settings.model_construct()
    assert getattr(getattr(default, section), field) != expected


def test_the_password_comes_from_the_environment_and_never_shows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PREPFLOW_SMTP_PASSWORD is read, kept secret in repr/str, and handed to SMTP login."""
    monkeypatch.setenv("PREPFLOW_SMTP_PASSWORD", "hunter2")
    settings = load_settings()
    assert settings.smtp.secret() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


def test_a_bad_sender_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender goes through the one address validator."""
    monkeypatch.setenv("PREPFLOW_SMTP_SENDER", "Secretariat <wtpf@itu>")
    with pytest.raises(InputError, match=r"PREPFLOW_SMTP_SENDER: .*is not an email address"):
        load_settings()


def test_a_bad_setting_is_one_paragraph_and_exit_2_for_every_command(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in a mail setting stops even `status` with a paragraph naming the variable (exit
    2, no traceback), and the store is not created."""
    monkeypatch.setenv("PREPFLOW_SMTP_PORT", "twenty-five")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["status"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "PREPFLOW_SMTP_PORT" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_pointed_at_changes_only_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rehearsal's sink replaces where mail goes, keeping the rest of the settings."""
    monkeypatch.setenv("PREPFLOW_SMTP_MAX_ATTEMPTS", "2")
    moved = load_settings().pointed_at(SmtpTarget(host="127.0.0.1", port=40025))
    assert (moved.smtp.host, moved.smtp.port, moved.smtp.max_attempts) == ("127.0.0.1", 40025, 2)


def test_addresses_in_log_records_come_out_masked(caplog: pytest.LogCaptureFixture) -> None:
    """The filter on prepflow's loggers masks addresses in the message and in its arguments."""
    log = get_logger("prepflow.test")
    with caplog.at_level(logging.INFO, logger="prepflow.test"):
        log.info("to %s: 550 <%s> unknown (from ops@itu.int)", "ana.silva@example.br",
                 "ana.silva@example.br")
    (record,) = caplog.records
    assert record.getMessage() == "to a***@example.br: 550 <a***@example.br> unknown " \
                                  "(from o***@itu.int)"
    assert "ana.silva" not in caplog.text


def test_only_prepflow_loggers_are_made_here() -> None:
    """get_logger refuses names outside prepflow.*: the filter's reach is its loggers."""
    with pytest.raises(ValueError, match="prepflow"):
        get_logger("somebody.else")


def test_the_one_validator_normalises_and_masks_its_errors() -> None:
    """valid_email accepts what email-validator accepts; its error never spells the address."""
    assert valid_email(" Ana.Silva@Example.br ") == "Ana.Silva@example.br"
    with pytest.raises(ValueError, match=r"'a\*\*\*@example.br' is not an email address") as err:
        valid_email("ana silva@example.br")
    assert "silva" not in str(err.value)
    assert mask_email("no-at-sign") == "***"


def test_any_argument_is_masked_once_rendered(caplog: pytest.LogCaptureFixture) -> None:
    """An exception (or any object) passed as an argument is masked too: the record is rendered
    once, masked, and keeps no arguments a handler could format an address back from."""
    log = get_logger("prepflow.test")
    with caplog.at_level(logging.INFO, logger="prepflow.test"):
        log.warning("refused: %s", ValueError("no member kofi@example.gh"))
    (record,) = caplog.records
    assert record.getMessage() == "refused: no member k***@example.gh"
    assert record.args is None


@pytest.mark.usefixtures("prefect_server")
def test_a_flow_runs_log_reaches_prefect_masked(caplog: pytest.LogCaptureFixture) -> None:
    """What a flow logs through run_logger() is masked before Prefect's handlers see it."""
    from prefect import flow

    from flows.orchestration.run_context import run_logger

    @flow
    def speak() -> None:
        run_logger().error("%s", PermissionError("'ana.silva@example.br' may not act"))

    runs = logging.getLogger("prefect.flow_runs")  # Prefect's: it does not propagate
    runs.addHandler(caplog.handler)
    try:
        speak()
    finally:
        runs.removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if "may not act" in r.getMessage()]
    assert said  # seen once through our handler, again through the root's if it propagates
    assert all("***@example.br" in text and "ana.silva" not in text for text in said)
