"""The console's sections, in the order the navigation shows them.

A capability that brings its own page (artifacts, maintenance...) adds one
entry here and one URL in ``console/urls.py``; the base template does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str  # what a view passes as ``section`` to be highlighted
    label: str
    url_name: str


SECTIONS: tuple[Section, ...] = (
    Section("requests", "Requests", "console:requests"),
    Section("health", "Health", "console:health"),
    Section("usage", "Usage", "console:usage"),
    Section("conversations", "Conversations", "console:conversations"),
    Section("artifacts", "Artifacts", "console:artifacts"),
    Section("routing", "Routing", "console:routing"),
    Section("knowledge", "Knowledge", "console:knowledge"),
)
