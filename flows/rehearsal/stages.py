"""The stage actions a rehearsal runs: the one place to plug in what happens at a stage.

The plan's own steps (postings, ticks, date fixes, scenario events) are stepped by
``flows.rehearsal.stepping``. Anything else the scripted secretariat does at a stage of the
process is a ``StageAction`` (see its docstring there): it says when it next acts from where
the process stands, and acts through the real flows (``flows.rehearsal.runs``). Examples of
what belongs here: dating an undated forum before the final report (``ForumDateAssumption``),
stepping the forum's agenda once the forum is in session, adding comments before each comment
window closes, moving draft Opinions and recording their outcomes at the forum.

To add one: write the class in its own module under ``flows/rehearsal/`` and append an
instance below. Actions are fresh per rehearsal (they may keep what they did); at one instant
they act in this list's order.
"""

from __future__ import annotations

from flows.rehearsal.agenda import ForumAgenda
from flows.rehearsal.comment_steps import CommentWindows
from flows.rehearsal.forum import ForumDateAssumption
from flows.rehearsal.opinion_steps import DraftOpinions
from flows.rehearsal.stepping import Rehearsal, StageAction


def stage_actions(r: Rehearsal) -> list[StageAction]:
    """The stage actions for one rehearsal, in the order they act at a shared instant."""
    del r  # every action applies to every rehearsal so far; an action may look at r later
    return [ForumDateAssumption(), DraftOpinions(), CommentWindows(), ForumAgenda()]
