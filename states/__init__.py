"""The pure core of prepflow: definitions, the state machine, guards, rules and decisions.

No Prefect, no network, no database and no wall clock here: time comes in as ``now``.
"""

from states.dates import PlanDate
from states.decision import Decision, Effect, Record
from states.definition import ProcessDefinition, parse_definition
from states.engine import advance, amend, apply, refusal_record, start
from states.errors import DefinitionError, InputError, PrepflowError, Problem, Refused, RuleId
from states.instance import Instance
from states.invitations import Invitation, InvitationEvent, next_invitation
from states.machine import build_table, mermaid
from states.plan import Span
from states.queries import (
    DueItem,
    DueKind,
    ManualStep,
    StepStatus,
    due_items,
    history,
    manual_steps,
    next_due,
    overdue_steps,
)
from states.rules import RuleResult, Status, check, effective_milestones
from states.status import Report, StatusWarning, WarningKind, report

__all__ = [
    "Decision",
    "DefinitionError",
    "DueItem",
    "DueKind",
    "Effect",
    "InputError",
    "Instance",
    "Invitation",
    "InvitationEvent",
    "ManualStep",
    "PlanDate",
    "PrepflowError",
    "Problem",
    "ProcessDefinition",
    "Record",
    "Refused",
    "Report",
    "RuleId",
    "RuleResult",
    "Span",
    "Status",
    "StatusWarning",
    "StepStatus",
    "WarningKind",
    "advance",
    "amend",
    "apply",
    "build_table",
    "check",
    "due_items",
    "effective_milestones",
    "history",
    "manual_steps",
    "mermaid",
    "next_due",
    "next_invitation",
    "overdue_steps",
    "parse_definition",
    "refusal_record",
    "report",
    "start",
]
