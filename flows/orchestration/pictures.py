"""The pictures of the operator's view: state diagrams and gantt charts as mermaid (issue 11).

The Prefect UI (V2) renders a markdown artifact's mermaid blocks itself, fitted to its width
(``max-width: 100%``) and coloured from its own light or dark theme. One long left-to-right
diagram of the whole process was therefore shrunk to a line 13 px high, and the gantt's labels
came out dark grey on navy. So: one small top-to-bottom diagram per cycle (and per side
region), one gantt per cycle, each under a markdown heading the UI draws in its own colours,
and each block with its own explicit colours (a mermaid ``init`` directive), light fills and
dark text that read the same on the UI's light and dark themes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from states.definition import ProcessDefinition
from states.machine import Mode, Spec, table_for

#: Set explicitly, else the labels inherit the code block's monospace font when drawn but are
#: measured in another, and are cut off. (Mermaid drops a directive's theme value holding a
#: character outside letters, digits, spaces and #%(),.; — so no 'sans-serif'.)
FONT = "Arial, Helvetica, Liberation Sans, DejaVu Sans"

#: The UI draws a mermaid block inside a code block, dark navy in its light and dark themes
#: alike: light text on it, dark text on light fills and bars.
THEME: dict[str, object] = {
    "theme": "base",
    "themeVariables": {
        "darkMode": True, "fontSize": "16px", "fontFamily": FONT, "background": "#1e293b",
        "primaryColor": "#e8f0fe", "primaryTextColor": "#111827",
        "primaryBorderColor": "#93c5fd", "lineColor": "#93c5fd", "textColor": "#f1f5f9",
        "secondaryColor": "#334155", "tertiaryColor": "#1e293b", "mainBkg": "#e8f0fe",
        "nodeBorder": "#93c5fd", "edgeLabelBackground": "#0b1220", "labelColor": "#f1f5f9",
        "titleColor": "#f1f5f9", "transitionColor": "#93c5fd",
        "transitionLabelColor": "#f1f5f9", "stateLabelColor": "#111827",
        # gantt: bars light with dark text; labels beside a bar and the axis light
        "sectionBkgColor": "#475569", "altSectionBkgColor": "#334155",
        "sectionBkgColor2": "#475569", "gridColor": "#64748b", "taskBkgColor": "#bfdbfe",
        "taskBorderColor": "#60a5fa", "taskTextColor": "#111827",
        "taskTextLightColor": "#111827", "taskTextDarkColor": "#111827",
        "taskTextOutsideColor": "#f8fafc", "taskTextClickableColor": "#f8fafc",
        "activeTaskBkgColor": "#fde68a", "activeTaskBorderColor": "#f59e0b",
        "doneTaskBkgColor": "#bbf7d0", "doneTaskBorderColor": "#22c55e",
        "critBkgColor": "#fecaca", "critBorderColor": "#ef4444", "todayLineColor": "#f87171",
    },
    # useWidth: drawn 720 px wide, then fitted to the column (at most that): a chart drawn
    # at the page's width and shrunk into the column had 5 px labels.
    "gantt": {"fontSize": 14, "sectionFontSize": 14, "barHeight": 26, "barGap": 6,
              "topPadding": 40, "leftPadding": 20, "rightPadding": 20,
              "gridLineStartPadding": 30, "numberSectionStyles": 2, "useWidth": 720},
    # Labels as SVG text, measured in the font they are drawn in.
    "htmlLabels": False,
    "flowchart": {"htmlLabels": False},
    "state": {"useMaxWidth": True},
}

#: States: light fills, dark text; the current one amber and bold; a neighbouring cycle's
#: dashed and grey.
CLASSES = ("    classDef step fill:#e8f0fe,stroke:#93c5fd,color:#111827\n"
           "    classDef current fill:#fde68a,stroke:#f59e0b,stroke-width:3px,color:#111827,"
           "font-weight:bold\n"
           "    classDef other fill:#cbd5e1,stroke:#94a3b8,stroke-dasharray:4 3,color:#1e293b")


def directive() -> str:
    """The mermaid ``init`` directive with the explicit theme (overrides the UI's)."""
    return "%%{init: " + json.dumps(THEME, separators=(",", ":")) + "}%%"


def block(heading: str, body: list[str]) -> str:
    """One mermaid block under a markdown heading."""
    return "\n".join([f"#### {heading}", "", "```mermaid", body[0], directive(), *body[1:],
                      "```"])


def _id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def _text(text: str) -> str:
    """A label mermaid takes as plain text (no quotes, entity codes or separators)."""
    return re.sub(r"[\"#;:{}]", " ", text).strip()


def state_diagrams(definition: ProcessDefinition, current: dict[str, str]) -> list[str]:
    """One top-to-bottom state diagram per cycle, then one per side region (consultation,
    forum agenda), the current state of each region marked."""
    table = table_for(definition)
    main = table.states["main"]
    out = []
    for number, cycle in enumerate(definition.cycles):
        own = [s for s in main if table.cycle_of(s) == cycle.id
               or (cycle.kind == "final" and table.cycle_of(s) is None)]
        specs = [s for s in table.specs if s.region == "main"
                 and (s.source in own or s.dest in own)]
        start = main[0] if number == 0 else None
        out.append(block(f"{cycle.name} — states", _diagram(
            table.labels, own, specs, current.get("main"), start)))
    names = {"consultation": "Public consultations", "agenda": "Forum agenda"}
    for region, states in table.states.items():
        if region == "main" or len(states) <= 1:
            continue
        specs = [s for s in table.specs if s.region == region]
        out.append(block(f"{names.get(region, region)} — states", _diagram(
            table.labels, states, specs, current.get(region), table.initial.get(region))))
    return out


def _diagram(labels: dict[str, str], own: list[str], specs: Iterable[Spec],
             current: str | None, start: str | None) -> list[str]:
    specs = list(specs)
    others = [n for s in specs for n in (s.source, s.dest) if n not in own]
    lines = ["stateDiagram-v2", "    direction TB"]
    for name in [*own, *dict.fromkeys(others)]:
        mark = " (now)" if name == current else ""
        lines.append(f'    state "{_text(labels.get(name, name))}{mark}" as {_id(name)}')
    if start is not None:
        lines.append(f"    [*] --> {_id(start)}")
    for s in specs:
        how = "by the secretariat" if s.mode is Mode.MANUAL else "on its date"
        lines.append(f"    {_id(s.source)} --> {_id(s.dest)} : {_text(s.label)} ({how})")
    if "closed" in own:
        lines.append("    closed --> [*]")
    lines.append(CLASSES)
    lines.append("    class " + ",".join(_id(n) for n in own) + " step")
    if others:
        lines.append("    class " + ",".join(_id(n) for n in dict.fromkeys(others)) + " other")
    if current in own or current in others:
        lines.append(f"    class {_id(current or '')} current")
    return lines
