"""Tables of expert ROI marks: one row per mark, and the NBSS lesions it is linked to.

A mark is always read from a stored SR document (TID 1500 Measurement Report, one TID
1410 planar ROI group per mark; docs/data-model.md, "Marks"), whether the archive wrote that SR
from an OMI-DB mark record (``source = "import"``) or a viewer sent it (``"sr"``). The
table is therefore an index of content that lives inside stored objects, like the
instance table is an index of headers: it can be rebuilt from the archive alone
(:func:`omipacs.annotations.indexer.backfill_marks`).

Marks are keyed by the SR that carries them. A newer SR with marks on the same image by
the same observer supersedes the older one: the older rows stay, with ``current``
false, so a re-import of a changed mark set never loses history and queries read the
``current`` rows only.

The box is the bounding box, in image pixel coordinates (column, row; PS3.3 C.18.6.1.2),
of the SR's graphic: exactly the OMI-DB X1/Y1/X2/Y2 box for a closed 5-point POLYLINE,
the extent of a POINT, CIRCLE or ELLIPSE otherwise (``graphic_type`` keeps the type).

Linked NBSS lesions are kept by *number* (``mark_lesion``), not by lesion row: the
clinical importer replaces a client's lesion rows on every changed record, and the
number, the image's breast and its study's episode identify the lesion again
(:mod:`omipacs.annotations.lesions`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from omipacs.index.models import UID, Base

FEATURE_COLUMNS = (
    "architectural_distortion",
    "dystrophic",
    "fat_necrosis",
    "focal_asymmetry",
    "mass",
    "suspicious_calcifications",
    "milk_of_calcium",
    "other_benign_cluster",
    "plasma_cell_mastitis",
    "skin",
    "with_calcification",
    "suture_calcification",
    "vascular",
)
"""The 13 OMI-DB feature flags, as column (and :class:`MarkInput` field) names."""


class Mark(Base):
    """One expert region of interest on one image (one frame of a tomosynthesis stack)."""

    __tablename__ = "mark"
    __table_args__ = (
        Index("ix_mark_image_reader", "sop_instance_uid", "reader", "current"),
        Index("ix_mark_current_kind", "current", "finding_kind"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    omidb_mark_id: Mapped[str | None] = mapped_column(String(32), index=True)
    """OMI-DB ``MarkID`` (from the tracking identifier ``OMI-DB mark <id>``)."""
    instance_pk: Mapped[int | None] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), index=True
    )
    """The marked image; ``None`` while the SR's image is not (yet) in the archive."""
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    """SOP Instance UID of the marked image (archive, i.e. de-identified, UID)."""
    frame_no: Mapped[int | None] = mapped_column(Integer)
    """1-based frame of a multi-frame image (Referenced Frame Number); ``None`` for 2D."""
    col_min: Mapped[float] = mapped_column(Float)
    row_min: Mapped[float] = mapped_column(Float)
    col_max: Mapped[float] = mapped_column(Float)
    row_max: Mapped[float] = mapped_column(Float)
    graphic_type: Mapped[str] = mapped_column(String(16))
    """SCOORD Graphic Type of the source graphic (POLYLINE, POINT, CIRCLE, ELLIPSE...)."""
    conspicuity: Mapped[str | None] = mapped_column(String(16), index=True)
    mass_class: Mapped[str | None] = mapped_column(String(32))
    benign_class: Mapped[str | None] = mapped_column(String(32))
    architectural_distortion: Mapped[bool] = mapped_column(Boolean, default=False)
    dystrophic: Mapped[bool] = mapped_column(Boolean, default=False)
    fat_necrosis: Mapped[bool] = mapped_column(Boolean, default=False)
    focal_asymmetry: Mapped[bool] = mapped_column(Boolean, default=False)
    mass: Mapped[bool] = mapped_column(Boolean, default=False)
    suspicious_calcifications: Mapped[bool] = mapped_column(Boolean, default=False)
    milk_of_calcium: Mapped[bool] = mapped_column(Boolean, default=False)
    other_benign_cluster: Mapped[bool] = mapped_column(Boolean, default=False)
    plasma_cell_mastitis: Mapped[bool] = mapped_column(Boolean, default=False)
    skin: Mapped[bool] = mapped_column(Boolean, default=False)
    with_calcification: Mapped[bool] = mapped_column(Boolean, default=False)
    suture_calcification: Mapped[bool] = mapped_column(Boolean, default=False)
    vascular: Mapped[bool] = mapped_column(Boolean, default=False)
    finding_kind: Mapped[str] = mapped_column(String(32))
    """:class:`~omipacs.annotations.codes.FindingKind` of the finding type code."""
    finding_code: Mapped[str] = mapped_column(String(96), default="")
    """The finding type as ``scheme:value`` (e.g. ``SCT:129788004``), "" if none."""
    finding_meaning: Mapped[str] = mapped_column(String(64), default="")
    pathology: Mapped[str | None] = mapped_column(String(16))
    """``malignant`` or ``benign`` as the SR records it for the linked lesion."""
    reader: Mapped[str] = mapped_column(String(64), default="")
    """The observer: a reader pseudonym (``RDR…``) for imported marks."""
    tracking_uid: Mapped[str] = mapped_column(UID, default="")
    sr_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    sr_instance_pk: Mapped[int] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(8))
    """``import`` (an SR the archive wrote from mark records) or ``sr`` (received)."""
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    """False once a newer SR marks the same image for the same observer."""
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """SR content that has no column: unmapped evaluations and measurements, verbatim."""
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    lesions: Mapped[list[MarkLesion]] = relationship(
        back_populates="mark", cascade="all, delete-orphan", passive_deletes=True,
        order_by="MarkLesion.nbss_lesion_no",
    )


class MarkLesion(Base):
    """An NBSS lesion number a mark is linked to (OMI-DB ``LinkedNBSSLesionNumber``)."""

    __tablename__ = "mark_lesion"

    mark_pk: Mapped[int] = mapped_column(
        ForeignKey("mark.pk", ondelete="CASCADE"), primary_key=True
    )
    nbss_lesion_no: Mapped[str] = mapped_column(String(16), primary_key=True)

    mark: Mapped[Mark] = relationship(back_populates="lesions")
