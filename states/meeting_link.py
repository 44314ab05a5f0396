"""A meeting's join link (issue 12): an https address, checked when the definition or the
amendment is read, so a bad link is refused at ``prepflow check`` or at start, not at 03:00 in
the middle of a delivery run.

Why https only: the link goes to every expert in the mail and in the calendar entry; a plain
``http`` link (or ``javascript:``, ``file:`` …) can be read or rewritten on the way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError, Url


def check_join_url(value: str) -> str:
    """The link as given (stripped), if it is an https address with a host and nothing that
    could break a header or a calendar line; else ValueError saying what is allowed."""
    link = value.strip()
    try:
        parsed: Url | None = Url(link)  # the WHATWG parse pydantic's URL types use
    except (ValueError, PydanticCustomError):
        parsed = None
    if parsed is None or parsed.scheme != "https" or not parsed.host:
        raise ValueError(f"{link!r} is not an https link; give the meeting's https:// join "
                         "link, like https://itu.zoom.us/j/123456789")
    if any(c.isspace() or not c.isprintable() for c in link):
        raise ValueError(f"{link!r} holds spaces or control characters; give the link alone "
                         "(encode a space as %20)")
    return link


#: The type of a join link field: unset, or a checked https address.
JoinUrl = Annotated[str, Field(max_length=2000), AfterValidator(check_join_url)]
