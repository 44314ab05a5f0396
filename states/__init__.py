"""The pure core of prepflow: definitions, the state machine, guards, rules and decisions.

No Prefect, no network, no database and no wall clock here: time comes in as ``now``.
"""

from states.dates import PlanDate
from states.decision import Decision, Effect, Record
from states.definition import ProcessDefinition, parse_definition
from states.engine import advance, amend, apply, refusal_record, start
from states.errors import DefinitionError, InputError, PrepflowError, Problem, Refused
from states.instance import Instance
from states.machine import build_table, mermaid
from states.plan import Span
from states.rules import RuleResult, Status, check, effective_milestones
from states.status import Report, report

__all__ = [
    "Decision",
    "DefinitionError",
    "Effect",
    "InputError",
    "Instance",
    "PlanDate",
    "PrepflowError",
    "Problem",
    "ProcessDefinition",
    "Record",
    "Refused",
    "Report",
    "RuleResult",
    "Span",
    "Status",
    "advance",
    "amend",
    "apply",
    "build_table",
    "check",
    "effective_milestones",
    "mermaid",
    "parse_definition",
    "refusal_record",
    "report",
    "start",
]
