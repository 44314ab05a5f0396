"""Email addresses: how they are stored and how they may be shown.

Expert addresses are personal data. Everything that writes one into a log, an artifact or an
error message masks it with ``mask_email``; the full address stays with the store and with the
secretariat member who typed it.
"""

from __future__ import annotations


def normalise_email(email: str) -> str:
    """The stored spelling of an address: stripped and lower-cased (unique per process)."""
    return email.strip().lower()


def mask_email(email: str) -> str:
    """``j***@itu.int``: enough for a secretariat to recognise, no more (logs, messages)."""
    local, at, domain = email.strip().partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{email[:1]}***"
