"""The forum's agenda and themes as definition data (``ForumDef`` and ``ProcessDefinition``
take them from here): Council decides both, so they are data, never code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: Decision 641, Annex 1's draft agenda in its order, worded for any forum: the default of a
#: forum whose definition gives no agenda (WTPF-26's own wording is in config/wtpf26.yaml).
ANNEX1_AGENDA = (
    "Inauguration of the Forum",
    "Election of the chair",
    "Opening remarks and presentations",
    "Organization of the work of the Forum",
    "Presentation of the Secretary-General's report",
    "Presentation of comments by the membership on the report",
    "Discussion",
    "Consideration of draft opinions",
    "Adoption of the chair's report and opinions",
    "Other business",
)


class ForumAgenda(BaseModel):
    """A forum's agenda (its items are the states of the forum), which items elect the chair,
    consider the draft Opinions and adopt the chair's report, and how the forum works."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agenda: list[str] = Field(default_factory=lambda: list(ANNEX1_AGENDA), min_length=1,
                              description="the forum's agenda items, in order (its states)")
    chair_item: int = Field(default=2, ge=1, description="the agenda item electing the chair")
    opinions_item: int = Field(default=8, ge=1,
                               description="from this item on, Opinions' outcomes are recorded")
    adoption_item: int = Field(default=9, ge=1, description="adopting the chair's report")
    working_groups: Literal["per-opinion", "none"] = "none"
    remote_participation: bool = False

    @model_validator(mode="after")
    def _items(self) -> ForumAgenda:
        count = len(self.agenda)
        for name in ("chair_item", "opinions_item", "adoption_item"):
            if getattr(self, name) > count:
                raise ValueError(f"{name} is item {getattr(self, name)} but the agenda has "
                                 f"{count} items")
        if not self.chair_item < self.opinions_item <= self.adoption_item:
            raise ValueError("the agenda's items come in order: chair_item, then "
                             "opinions_item, then adoption_item (or the same as opinions_item)")
        return self


class Theme(BaseModel):
    """A theme of the forum (Council decides them); each draft Opinion is on one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$", max_length=40,
                    description="lower-case letters, digits and dashes, e.g. space")
    name: str = Field(min_length=1)


def _unique(themes: list[Theme]) -> list[Theme]:
    ids = [t.id for t in themes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"theme ids must be unique; got {', '.join(ids)}")
    return themes


Themes = Annotated[list[Theme], AfterValidator(_unique)]
