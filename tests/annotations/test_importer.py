"""Importing mark records: one SR per image and reader, idempotent, checked, de-identified."""

from __future__ import annotations

import io
import subprocess
from datetime import date
from typing import Any

import pydicom
import pytest
from pydicom.uid import Comprehensive3DSRStorage
from sqlalchemy import func, select

from omipacs.annotations.importer import find_images, import_marks, read_header
from omipacs.annotations.models import Mark
from omipacs.annotations.records import parse_mark_record
from omipacs.annotations.search import search_marks
from omipacs.annotations.sr_write import PlannedMark, build_marks_sr, write_sr
from omipacs.clinical.models import Client, Episode, Event, Lesion, LesionFinding, StudyLink
from omipacs.clinical.nbss import reader_pseudonym
from omipacs.deid.keys import DeidKeys
from omipacs.demo import factory
from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from tests.annotations.builders import (
    OTHER_READER,
    READER,
    StoredImage,
    patient,
    record,
    store_image,
)


def sr_count(services: Services) -> int:
    with services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Instance)
                            .where(Instance.sop_class_uid == Comprehensive3DSRStorage)) or 0)


def current_marks(services: Services) -> list[tuple[str, str | None, float]]:
    with services.sessions() as s:
        rows = s.execute(select(Mark.sop_instance_uid, Mark.omidb_mark_id, Mark.col_max)
                         .where(Mark.current.is_(True)))
        return sorted((uid, mark_id, col) for uid, mark_id, col in rows)


def two_images(services: Services) -> tuple[StoredImage, StoredImage]:
    who = patient(11)
    study = factory.new_uid()
    first = store_image(services, seed=11, who=who, study_uid=study)
    second = store_image(services, seed=12, who=who, study_uid=study, view="MLO")
    return first, second


def test_marks_become_one_sr_per_image_and_reader(archive: Services) -> None:
    first, second = two_images(archive)
    records = [
        record(first, MarkID=1),
        record(first, MarkID=2, X1=30, X2=40),
        record(first, MarkID=3, Reader=OTHER_READER),
        record(second, MarkID=4),
    ]
    report = import_marks(archive, records)
    assert report.ok and report.accepted == 4
    assert report.stored == 3 and report.already_stored == 0
    assert sorted(s.marks for s in report.srs) == [1, 1, 2]
    assert sr_count(archive) == 3

    with archive.sessions() as s:
        rows = s.execute(
            select(Instance.sop_instance_uid, Instance.source_kind, Series.series_instance_uid,
                   Study.study_instance_uid)
            .join(Series, Instance.series_pk == Series.pk).join(Study)
            .where(Instance.sop_class_uid == Comprehensive3DSRStorage)
        ).all()
        marks = s.scalars(select(Mark).order_by(Mark.omidb_mark_id)).all()
        client = s.scalars(select(Client)).one()
    assert {r.study_instance_uid for r in rows} == {first.study_uid}
    assert len({r.series_instance_uid for r in rows}) == 3  # each SR in its own series
    assert not {r.series_instance_uid for r in rows} & {first.series_uid, second.series_uid}
    assert {r.source_kind for r in rows} == {"internal"}
    assert [m.omidb_mark_id for m in marks] == ["1", "2", "3", "4"]
    assert {m.source for m in marks} == {"import"} and all(m.current for m in marks)
    assert [m.reader for m in marks] == [READER, READER, OTHER_READER, READER]
    assert (marks[1].col_min, marks[1].col_max) == (30.0, 40.0)
    assert client.is_marked  # the statistics' marked flag, set in the same transaction


def test_reimporting_the_same_marks_stores_nothing(archive: Services) -> None:
    first, second = two_images(archive)
    records = [record(first, MarkID=1), record(first, MarkID=2, X2=44), record(second)]
    assert import_marks(archive, records).stored == 2
    before = current_marks(archive)

    again = import_marks(archive, list(reversed(records)))  # order does not matter
    assert again.ok and again.accepted == 3
    assert again.stored == 0 and again.already_stored == 2
    assert sr_count(archive) == 2
    assert current_marks(archive) == before
    with archive.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Mark)) == 3


def test_a_changed_set_supersedes_and_a_reimport_reinstates(archive: Services) -> None:
    image = store_image(archive, seed=21)
    old = [record(image, MarkID=1), record(image, MarkID=2, X2=25)]
    new = [record(image, MarkID=1), record(image, MarkID=2, X2=35)]
    import_marks(archive, old)
    changed = import_marks(archive, new)
    assert changed.stored == 1 and sr_count(archive) == 2
    assert [m[2] for m in current_marks(archive)] == [20.0, 35.0]
    with archive.sessions() as s:
        assert len(search_marks(s, sop_uid=image.sop_uid)) == 2
        assert len(search_marks(s, sop_uid=image.sop_uid, current=None)) == 4

    back = import_marks(archive, old)
    assert back.already_stored == 1 and sr_count(archive) == 2
    assert [m[2] for m in current_marks(archive)] == [20.0, 25.0]


def test_other_readers_marks_are_not_superseded(archive: Services) -> None:
    image = store_image(archive, seed=22)
    import_marks(archive, [record(image, MarkID=1), record(image, MarkID=2, Reader=OTHER_READER)])
    import_marks(archive, [record(image, MarkID=1, X2=33)])
    assert current_marks(archive) == [(image.sop_uid, "1", 33.0), (image.sop_uid, "2", 20.0)]


REJECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("outside columns", {"X2": 49}, "the box lies outside the image (48 columns x 64 rows)"),
    ("outside rows", {"Y1": 70}, "the box lies outside the image"),
    ("unknown image", {"SOPInstanceUID": "2.25.1234"}, "no such image in the archive"),
    ("other study", {"StudyInstanceUID": "2.25.99"}, "not in the named study and series"),
    ("bad value", {"X1": "left"}, "X1 is not a number"),
    ("no frame", {"dbt": True, "FrameNumber": None}, "must name its frame"),
    ("frame beyond", {"dbt": True, "FrameNumber": 6}, "the image has no frame 6"),
    ("frame of 2D", {"FrameNumber": 2}, "the image has no frame 2"),
]


@pytest.mark.parametrize(("case", "fields", "reason"), REJECTIONS)
def test_bad_records_are_refused_with_reasons_and_the_rest_imported(
    archive: Services, case: str, fields: dict[str, Any], reason: str
) -> None:
    dbt = fields.pop("dbt", False)
    image = store_image(archive, seed=31, dbt=dbt)
    good = record(image, MarkID=1)
    bad = record(image, MarkID=2, **fields)
    report = import_marks(archive, [good, bad])
    assert report.accepted == 1 and len(report.rejected) == 1, case
    rejection = report.rejected[0]
    assert rejection.index == 1 and rejection.mark_id == "2"
    assert reason in rejection.reason
    assert report.to_dict()["rejected"][0]["reason"] == rejection.reason


def test_repeated_marks_and_the_first_frame_of_a_2d_image(archive: Services) -> None:
    image = store_image(archive, seed=32)
    report = import_marks(archive, [record(image, FrameNumber=1), record(image, X2=9),
                                    record(image, MarkID=None), record(image, MarkID=None)])
    assert [r.index for r in report.rejected] == [1, 3]
    assert all("appears twice" in r.reason for r in report.rejected)
    with archive.sessions() as s:
        assert set(s.scalars(select(Mark.frame_no))) == {None}


def test_dbt_marks_name_their_slice(archive: Services) -> None:
    image = store_image(archive, seed=33, dbt=True, frames=5)
    assert import_marks(archive, [record(image, FrameNumber=4)]).ok
    with archive.sessions() as s:
        (found,) = search_marks(s, sop_uid=image.sop_uid)
    assert found.frame == 4


def test_references_resolve_after_deidentification(archive: Services) -> None:
    who = patient(41)
    source = factory.make_mammo(rows=64, columns=48, rng=41, patient=who)
    result = archive.pipeline.ingest_stream(
        io.BytesIO(factory.to_bytes(source)),
        IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A", deidentify=True),
    )
    stored = StoredImage(result.study_instance_uid, result.series_instance_uid,
                         result.sop_instance_uid, 64, 48, 1)
    assert stored.sop_uid != str(source.SOPInstanceUID)  # remapped on the way in

    report = import_marks(archive, [record(stored, Reader="R07")])
    assert report.ok and report.stored == 1
    keys = archive.extras["deid.keys"]
    assert isinstance(keys, DeidKeys)
    with archive.sessions() as s:
        sr_key, patient_id = s.execute(
            select(Instance.blob_key, Patient.patient_id)
            .join(Series, Instance.series_pk == Series.pk).join(Study).join(Patient)
            .where(Instance.sop_instance_uid == report.srs[0].sop_instance_uid)
        ).one()
        (mark,) = s.scalars(select(Mark)).all()
    with archive.blobs.open(sr_key) as f:
        sr = pydicom.dcmread(f)
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == stored.sop_uid
    assert sr.StudyInstanceUID == stored.study_uid
    assert sr.PatientID == patient_id and patient_id != who.local_id  # the pseudonym
    assert sr.PatientName != who.name
    assert mark.instance_pk is not None and mark.reader == reader_pseudonym(keys, "R07")

    path = archive.blobs.local_path(sr_key)
    assert path is not None
    dump = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0 and "error" not in dump.stderr.lower()

    # The same marks named by the site's UIDs (an IMAGEDB file) are the same SR.
    site_record = record(stored, StudyInstanceUID=str(source.StudyInstanceUID),
                         SeriesInstanceUID=str(source.SeriesInstanceUID),
                         SOPInstanceUID=str(source.SOPInstanceUID), Reader="R07")
    again = import_marks(archive, [site_record], source_uids=True)
    assert again.ok and again.already_stored == 1 and sr_count(archive) == 1


def test_the_linked_lesions_pathology_goes_into_the_sr(archive: Services) -> None:
    image = store_image(archive, seed=51, laterality="L")
    with archive.write_sessions.begin() as s:
        patient_pk, study_pk = s.execute(
            select(Patient.pk, Study.pk).join(Study).where(
                Study.study_instance_uid == image.study_uid)
        ).one()
        client = Client(client_id=s.scalar(select(Patient.patient_id)), patient_pk=patient_pk)
        s.add(client)
        s.flush()
        episode = Episode(client_pk=client.pk, nbss_episode_id="1", outcome="M")
        s.add(episode)
        s.flush()
        surgery = Event(episode_pk=episode.pk, kind="surgery", date_performed=date(2020, 1, 2),
                        left_opinion="OM")
        lesion = Lesion(episode_pk=episode.pk, side="L", nbss_lesion_no="1", description="MA")
        s.add_all([surgery, lesion, StudyLink(study_pk=study_pk, client_pk=client.pk,
                                              episode_pk=episode.pk)])
        s.flush()
        s.add(LesionFinding(lesion_pk=lesion.pk, event_pk=surgery.pk, opinion="H5"))
    report = import_marks(archive, [record(image, MarkID=1), record(image, MarkID=2,
                                                                    LinkedNBSSLesionNumber="2")])
    assert report.ok
    with archive.sessions() as s:
        pathology = {i: p for i, p in s.execute(select(Mark.omidb_mark_id, Mark.pathology))}
    assert pathology == {"1": "malignant", "2": None}


def test_an_archive_without_the_indexer_still_gets_its_marks(services: Services) -> None:
    assert services.pipeline.indexers == []
    image = store_image(services, seed=52)
    report = import_marks(services, [record(image)])
    assert report.stored == 1
    with services.sessions() as s:
        (mark,) = search_marks(s)
    assert mark.sop_uid == image.sop_uid and mark.source == "import"


def test_a_stored_sr_with_our_uid_but_other_bytes_stands(archive: Services) -> None:
    image = store_image(archive, seed=53)
    with archive.sessions() as s:
        facts = find_images(s, [image.sop_uid])[image.sop_uid]
    sr = build_marks_sr(read_header(archive.blobs, facts),
                        [PlannedMark(parse_mark_record(record(image)))])
    sr.SeriesDescription = "written by an older encoder"
    path = archive.spool.new_path()
    write_sr(sr, path)
    archive.pipeline.ingest_spooled(
        path, IngestOrigin(OriginKind.INTERNAL, ae_title="OMIPACS", deidentify=False))

    report = import_marks(archive, [record(image)])
    assert report.ok and report.already_stored == 1 and sr_count(archive) == 1
    assert current_marks(archive) == [(image.sop_uid, "101", 20.0)]
