"""What changed for a licence since its previous release, read from the change feed.

Every release records the change-feed sequence number it was cut at
(``change_feed_sequence``). Release *N+1* reads the feed's events after release *N*'s
number, a page at a time, and they decide what it (re)writes:

* ``instance-stored`` / ``instance-deleted``: the instance is looked up again in the
  licence's view (the one :class:`~omipacs.index.visibility.Visibility` condition), so
  an event for an instance outside the licence's members or scopes changes nothing;
  one inside is copied (new or changed) or listed in ``removed.csv`` (gone);
* ``clinical-changed``: the clinical tables are made again when the client is one of
  the release's;
* ``marks-changed`` (and any instance event of a study): that study's ``marks.csv`` and
  ``marks.json`` are made again;
* ``client-withdrawn`` (carrying only the keyed hash of her client ID): the clients of
  release *N* whose hash it is are listed in ``withdrawn.csv`` and their folders'
  files in ``removed.csv``.

Everything else is referenced from release *N*'s manifest without reading the index's
rows for it. The full comparison with release *N*'s manifest (every file's path and
SHA-256) remains for the cases the feed cannot answer: the first release, a licence
re-bound to another cohort version, ``--full``, and a feed whose result does not add
up to the index's count of the licence's instances (docs/releases.md, "Incremental").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.orm import Session

from omipacs.index.changes import ChangeKind, iter_changes

FEED_PAGE: Final = 1000
"""Events read from the feed per query."""


@dataclass
class FeedDelta:
    """The events of the feed between two sequence numbers, folded per object.

    Its size grows with the number of changes, never with the archive's size.
    """

    since: int
    upto: int
    events: int = 0
    sops: set[str] = field(default_factory=set)
    """SOP Instance UIDs stored or deleted: each is looked up again in the licence's view."""
    studies: set[str] = field(default_factory=set)
    """Studies whose marks (or whose instances, so perhaps whose SRs) changed."""
    clinical_clients: set[str] = field(default_factory=set)
    withdrawn_hashes: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, int]:
        """What the manifest says about the increment."""
        return {"from_sequence": self.since, "to_sequence": self.upto, "events": self.events,
                "instances_changed": len(self.sops), "studies_changed": len(self.studies),
                "clinical_clients_changed": len(self.clinical_clients),
                "withdrawals": len(self.withdrawn_hashes)}


def read_feed(session: Session, since: int, upto: int, page: int = FEED_PAGE) -> FeedDelta:
    """Fold the events ``since < seq <= upto`` into a :class:`FeedDelta`, page by page."""
    delta = FeedDelta(since, upto)
    for change in iter_changes(session, since, upto, page):
        delta.events += 1
        if change.kind in (ChangeKind.INSTANCE_STORED, ChangeKind.INSTANCE_DELETED):
            if change.sop_instance_uid:
                delta.sops.add(change.sop_instance_uid)
            if change.study_instance_uid:
                delta.studies.add(change.study_instance_uid)
        elif change.kind == ChangeKind.MARKS_CHANGED:
            if change.study_instance_uid:
                delta.studies.add(change.study_instance_uid)
        elif change.kind == ChangeKind.CLINICAL_CHANGED:
            if change.client_id:
                delta.clinical_clients.add(change.client_id)
        elif change.kind == ChangeKind.CLIENT_WITHDRAWN and change.client_hash:
            delta.withdrawn_hashes.add(change.client_hash)
    return delta
