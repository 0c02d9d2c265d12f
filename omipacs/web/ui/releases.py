"""Releases on the curator's desk: every licence's releases, their progress and whether
their last verification passed (:mod:`omipacs.export.release`).

Releases are made and verified with ``omipacs release create|verify``; this page shows
where each one stands, and refreshes itself (htmx, every few seconds) while any is
still being planned or copied. Curators and admins (``read-releases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from omipacs.access import admin
from omipacs.access.admin import LicenceInfo
from omipacs.access.policy import Action, Role
from omipacs.export.release import UNFINISHED, ReleaseInfo, list_releases
from omipacs.web.context import services
from omipacs.web.ui.blueprint import page, render

REFRESH_SECONDS = 3


@dataclass(frozen=True)
class ReleaseRow:
    """A release with its licence, as the table shows it."""

    licence: LicenceInfo
    release: ReleaseInfo

    @property
    def percent(self) -> int:
        """Bytes copied so far, in percent (files when no bytes are known)."""
        r = self.release
        if r.state == "complete":
            return 100
        if r.bytes_total:
            return min(100, int(100 * r.bytes_done / r.bytes_total))
        return min(100, int(100 * r.files_done / r.files_total)) if r.files_total else 0

    @property
    def destination(self) -> str:
        """The URL without any user name or password it may carry."""
        parts = urlsplit(self.release.url)
        if parts.username is None and parts.password is None:
            return self.release.url
        host = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def _rows() -> list[ReleaseRow]:
    with services().sessions() as session:
        return [
            ReleaseRow(lic, rel)
            for lic in admin.list_licences(session)
            for rel in list_releases(session, lic.id)
        ]


@page("/desk/releases", Action.READ_RELEASES, nav="Releases",
      roles={Role.ADMIN, Role.CURATOR}, order=73)
def releases() -> tuple[str, int]:
    """Every release, newest first per licence."""
    rows = _rows()
    return render("ui/desk/releases.html", rows=rows,
                  busy=any(r.release.state in UNFINISHED[:2] for r in rows),
                  refresh=REFRESH_SECONDS)


@page("/desk/releases/table", Action.READ_RELEASES)
def releases_table() -> tuple[str, int]:
    """The table alone (what the page's refresh swaps in)."""
    rows = _rows()
    return render("ui/desk/_releases_table.html", rows=rows,
                  busy=any(r.release.state in UNFINISHED[:2] for r in rows),
                  refresh=REFRESH_SECONDS)
