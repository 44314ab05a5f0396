"""Draft Opinions and the Forum's record: the values an instance keeps about them.

Pure data (the decisions that change them are in ``states.opinions``): an Opinion's stage
and the history of its changes, each with the cycle and expert-group meeting at which it
happened, and the Forum's own record (agenda position, chair, chair's report, working groups).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict


class Stage(StrEnum):
    """Where a draft Opinion stands: beside the report's drafts, then at the Forum."""

    OUTLINE = "outline"
    """An outline of a possible draft Opinion was proposed (contributions on the First Draft)."""
    POSSIBLE = "possible"
    """A possible draft Opinion (Second Draft)."""
    ANNEXED = "annexed"
    """A draft Opinion annexed to a draft of the report (Third and Fourth Drafts)."""
    FINAL = "final"
    """In the final report: it goes before the Forum."""
    ADOPTED = "adopted"
    """Adopted by the Forum, by consensus."""
    NOT_ADOPTED = "not-adopted"
    WITHDRAWN = "withdrawn"


#: The stages beside the drafts, in order; an Opinion moves forward through them.
PREPARATION = (Stage.OUTLINE, Stage.POSSIBLE, Stage.ANNEXED, Stage.FINAL)
#: The Forum's outcomes (and a withdrawal): after one, an Opinion changes no more.
OUTCOMES = (Stage.ADOPTED, Stage.NOT_ADOPTED, Stage.WITHDRAWN)

LABELS = {
    Stage.OUTLINE: "outline proposed", Stage.POSSIBLE: "possible draft Opinion",
    Stage.ANNEXED: "draft Opinion annexed to a draft", Stage.FINAL: "in the final report",
    Stage.ADOPTED: "adopted by consensus", Stage.NOT_ADOPTED: "not adopted",
    Stage.WITHDRAWN: "withdrawn",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Where(_Frozen):
    """Where the process stood at a moment: its cycle and its current or last IEG meeting."""

    cycle: str | None = None
    """The cycle the main region was in (None at and after the Forum)."""
    meeting: str | None = None
    """The expert-group meeting in session, else the last one held (None before the first)."""


class OpinionChange(_Frozen):
    """One change of an Opinion's stage: what, where in the process, when, by whom, why."""

    stage: Stage
    where: Where
    state: str
    """The main region's state at that moment (e.g. 'draft3.comment_window')."""
    at: AwareDatetime
    by: str
    reason: str | None = None
    consensus: bool = True
    """False when the expert group reached no consensus on this step."""


class Opinion(_Frozen):
    """A draft Opinion and its lifecycle."""

    id: str
    title: str
    theme: str | None = None
    stage: Stage = Stage.OUTLINE
    consensus: bool = True
    """False once the expert group reached no consensus on it: it may still go before the
    Forum, marked as such."""
    presented_in: Where
    presented_after_final: bool = False
    """First presented after the final report was posted (Resolution 2, resolves 10: it
    cannot be placed before the Forum)."""
    history: tuple[OpinionChange, ...] = ()

    @property
    def label(self) -> str:
        """The stage as people read it."""
        return LABELS[self.stage]


class ForumRecord(_Frozen):
    """What the Forum did: where its agenda stands, its chair, its report, working groups."""

    item: int = 0
    """The agenda item under way (1-based); 0 before the agenda begins; len+1 once done."""
    chair: str | None = None
    report: str | None = None
    """The chair's report's document reference, recorded with its adoption."""
    working_groups: tuple[str, ...] = ()
    """One per Opinion in the final report (by id), where the definition says so."""
    non_binding: bool = True
    """Resolution 2, resolves 3: the Forum adopts Opinions, no prescriptive outcomes."""
