"""A meeting's join link (issue 12): an https address, checked when the definition or the
amendment is read, so a bad link is refused at ``prepflow check`` or at start, not at 03:00 in
the middle of a delivery run.

Why https only: the link goes to every expert in the mail and in the calendar entry; a plain
``http`` link (or ``javascript:``, ``file:`` …) can be read or rewritten on the way.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field


def check_join_url(value: str) -> str:
    """The link as given (stripped), if it is an https address with a host and nothing that
    could break a header or a calendar line; else ValueError saying what is allowed."""
    link = value.strip()
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() != "https" or not host:
        raise ValueError(f"{link!r} is not an https link; give the meeting's https:// join "
                         "link, like https://itu.zoom.us/j/123456789")
    if any(c.isspace() or not c.isprintable() for c in link):
        raise ValueError(f"{link!r} holds spaces or control characters; give the link alone "
                         "(encode a space as %20)")
    return link


#: The type of a join link field: unset, or a checked https address.
JoinUrl = Annotated[str, Field(max_length=2000), AfterValidator(check_join_url)]
