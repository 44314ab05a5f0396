"""The Prefect UI as a secretariat member sees it, in a real browser (issue 11).

A local Prefect server, a short rehearsal published to it, the deployments served against a
live store; headless Chromium (the system's, driven by Playwright, no browser download) then
opens the V2 artifact pages and checks the diagram and gantt are drawn as SVG of a readable
size, and answers a waiting await-secretariat run through its form. The outcome is checked
through the CLI (`prepflow audit`). Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.mail.sink import free_port
from flows.orchestration.serve import start_server, stop

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
#: The rehearsal's own process id (flows.rehearsal.driver.rehearsal_id).
REHEARSED = "wtpf-26-rehearsal"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason="Chromium is not installed here (apt-get install chromium; "
                              ".ci/run installs it)"),
]


@dataclass
class Setup:
    """The running server and what the test needs to reach it."""

    base: str
    env: dict[str, str]
    live: str
    tmp: Path


def _api(base: str, path: str, body: dict[str, object] | None = None) -> object:
    request = urllib.request.Request(
        f"{base}/api{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


def _cli(setup: Setup, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=setup.env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def _wait(what: str, check: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Server, short rehearsal, live store with WTPF-26, deployments served."""
    tmp = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "PREPFLOW_"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp / "prefect-home"), COLUMNS="400",
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    server = start_server(tmp / "server-home", port, lambda text: None)
    live = f"sqlite:///{tmp / 'live.db'}"
    setup = Setup(f"http://127.0.0.1:{port}", env, live, tmp)
    served = None
    try:
        _cli(setup, "rehearse", "config/wtpf26.yaml", "--to", "2024-11-20", "--transcript",
             str(tmp / "rehearsal.txt"), "--database", f"sqlite:///{tmp / 'rehearsal.db'}")
        _cli(setup, "init", "config/wtpf26.yaml", "--database", live,
             "--now", "2024-07-10T00:00Z")
        with (tmp / "serve.log").open("wb") as log:
            served = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], cwd=ROOT,
                                      env={**env, "PREPFLOW_DATABASE_URL": live}, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        _wait("the served deployments", lambda: "await-secretariat" in {
            d["name"] for d in _api(setup.base, "/deployments/filter", {})})  # type: ignore[attr-defined, index]
        yield setup
    finally:
        if served is not None:
            stop(served)
        stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """The system's Chromium, headless."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(120_000)  # a loaded CI machine; no step is timed
        yield context
        chromium.close()


def _artifact_page(browser: object, setup: Setup, key: str) -> object:
    """The V2 page of the latest version of an artifact, its mermaid blocks all drawn."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{setup.base}/v2/artifacts/key/{key}")
    page.locator("main a").filter(has_text=re.compile("^[0-9a-f]{8}$")).first.click()
    page.wait_for_url("**/artifacts/artifact/**")
    page.wait_for_function("""() => {
        const wanted = document.querySelectorAll('main h4').length;
        const drawn = document.querySelectorAll('main svg[id^=mermaid]').length;
        return wanted > 0 && drawn >= wanted; }""", timeout=120_000)
    page.wait_for_timeout(500)
    return page


def _sizes(page: object) -> list[dict[str, float]]:
    """Each drawn SVG's size on screen and its smallest label's height, in CSS pixels (not
    counting a gantt's axis dates, which mermaid draws at 10 px whatever it is told)."""
    return page.evaluate("""() => [...document.querySelectorAll('main svg[id^=mermaid]')]
        .map(svg => {
            const box = svg.getBoundingClientRect();
            const heights = [...svg.querySelectorAll('text')]
                .filter(t => t.textContent.trim().length > 3 && !t.closest('.tick'))
                .map(t => t.getBoundingClientRect().height).filter(h => h > 0);
            return {width: box.width, height: box.height, label: Math.min(...heights),
                    labels: heights.length};
        })""")  # type: ignore[attr-defined, no-any-return]


def test_state_diagram_is_drawn_legibly_one_per_cycle(setup: Setup, browser: object) -> None:
    """The diagram page draws one SVG per cycle and side region, each readable: taller than a
    line, labels at least 11 px high, the current state marked."""
    page = _artifact_page(browser, setup, f"{REHEARSED}-diagram")
    page.screenshot(path=str(SHOTS / "diagram.png"), full_page=True)  # type: ignore[attr-defined]
    sizes = _sizes(page)
    assert len(sizes) >= 5, sizes  # four drafts and the final report, at least
    for size in sizes:
        assert size["height"] >= 150, size
        assert size["width"] >= 150, size
        assert size["labels"] > 0, size
        assert size["label"] >= 11, size
    assert "(now)" in page.locator("main").inner_text()  # type: ignore[attr-defined]


def test_gantt_is_drawn_legibly_one_per_cycle(setup: Setup, browser: object) -> None:
    """The timeline page draws a gantt per cycle, labels at least 11 px high."""
    page = _artifact_page(browser, setup, f"{REHEARSED}-timeline")
    page.screenshot(path=str(SHOTS / "timeline.png"), full_page=True)  # type: ignore[attr-defined]
    sizes = _sizes(page)
    assert len(sizes) >= 5, sizes
    for size in sizes:
        assert size["width"] >= 400, size
        assert size["height"] >= 60, size
        assert size["labels"] > 0, size
        assert size["label"] >= 11, size
    text = page.locator("main").inner_text()  # type: ignore[attr-defined]
    assert "First Draft posted (actual)" in text


def test_status_and_rules_are_tables_in_whole_days(setup: Setup) -> None:
    """The status artifact counts days left in whole days; the rules are a table artifact."""
    status = _api(setup.base, f"/artifacts/{REHEARSED}-status/latest")
    rules = _api(setup.base, f"/artifacts/{REHEARSED}-rules/latest")
    assert status["type"] == "table"  # type: ignore[index]
    assert rules["type"] == "table"  # type: ignore[index]
    rows = json.loads(status["data"])  # type: ignore[index]
    days = [row["days left"] for row in rows if row["days left"] != "—"]
    assert days, rows
    assert all(isinstance(d, int) for d in days), rows
    assert "six-weeks" in rules["data"]  # type: ignore[index]


def _field(dialog: object, label: str) -> object | None:
    found = dialog.get_by_label(re.compile(rf"^{label}\b", re.I))  # type: ignore[attr-defined]
    return found.first if found.count() else None


def _answer(dialog: object, values: dict[str, str]) -> None:
    """Fill the form's fields that exist, by label: text boxes typed, choices picked, and a
    'confirm' switch or box ticked. (The form's field set may change; the outcome may not.)"""
    for label, value in values.items():
        field = _field(dialog, label)
        if field is None:
            continue
        kind = field.evaluate("e => e.tagName + ':' + (e.getAttribute('role') || '')")  # type: ignore[attr-defined]
        if kind.startswith(("TEXTAREA", "INPUT")):
            if not field.input_value():  # type: ignore[attr-defined]
                field.fill(value)  # type: ignore[attr-defined]
        elif "combobox" in kind:
            field.click()  # type: ignore[attr-defined]
            dialog.page.get_by_role("option", name=value).first.click()  # type: ignore[attr-defined]
    confirm = _field(dialog, "confirm")
    if confirm is not None and confirm.get_attribute("aria-checked") != "true":  # type: ignore[attr-defined]
        confirm.click()  # type: ignore[attr-defined]


def test_waiting_step_answered_in_the_form_is_applied_and_audited(
        setup: Setup, browser: object) -> None:
    """A waiting 'post the First Draft' run, answered in its Resume form in the browser,
    posts the draft: `prepflow audit` shows the transition, by whom, via the waiting step."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # As `advance` asks when the step falls due (waiting_steps.py), with the day moved back.
    with (temporary_settings(updates={PREFECT_API_URL: setup.env["PREFECT_API_URL"]}),
          get_client(sync_client=True) as client):
        deployment = client.read_deployment_by_name("await-secretariat/await-secretariat")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={
            "process": "wtpf-26", "trigger": "post_draft1", "now": "2024-08-05T07:00:00Z"},
            tags=["process:wtpf-26", "step:post_draft1"])

    def state() -> dict[str, str]:
        return _api(setup.base, f"/flow_runs/{run.id}")["state"]  # type: ignore[index, no-any-return]

    _wait("the run to wait for its answer", lambda: state()["type"] == "PAUSED")
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{setup.base}/v2/runs/flow-run/{run.id}")
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("First Draft posted").first.wait_for()
    dialog.locator("textarea, input, [role=combobox]").first.wait_for()  # the form is drawn
    _answer(dialog, {"process": "wtpf-26", "trigger": "post_draft1",
                     "actor": "wtpf-secretariat", "document": "WTPF-26/1",
                     "reason": "posted online"})
    page.screenshot(path=str(SHOTS / "waiting-step-form.png"), full_page=True)
    dialog.get_by_role("button", name=re.compile("^(Resume|Submit)$")).click()
    _wait("the run to finish", lambda: state()["type"] in ("COMPLETED", "FAILED", "CRASHED"))
    page.goto(f"{setup.base}/v2/runs/flow-run/{run.id}")
    page.get_by_text("wtpf-26: First Draft posted").first.wait_for()
    page.screenshot(path=str(SHOTS / "waiting-step-done.png"), full_page=True)
    assert state()["type"] == "COMPLETED", state()

    audit = _cli(setup, "audit", "wtpf-26", "--database", setup.live)
    [row] = [line for line in audit.splitlines() if "post_draft1" in line]
    for shown in ("wtpf-secretariat", "WTPF-26/1", "waiting step", str(run.id)):
        assert shown in row, row
    assert "verified" in _cli(setup, "audit", "--verify", "--database", setup.live).lower()
