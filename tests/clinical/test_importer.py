"""Import of NBSS records: round trip, re-import, rejection, atomicity (both databases)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from omipacs.clinical.importer import import_paths, import_records
from omipacs.clinical.models import (
    Client,
    Density,
    Episode,
    Event,
    ImageFeature,
    Lesion,
    LesionFinding,
    ScreenRead,
    Site,
)
from omipacs.clinical.tally import count_clients, nonzero, read_tally
from omipacs.deid.pseudonyms import client_pseudonym, date_offset_days, remap_uid
from omipacs.services import Services
from tests.clinical.conftest import KEYS, episode_id
from tests.clinical.records import (
    LOCAL_ID,
    NHS_NUMBER,
    OTHER_NHS_NUMBERS,
    full_record,
    minimal_record,
)

CLIENT_ID = client_pseudonym(KEYS, NHS_NUMBER, "", "").client_id
OFFSET = timedelta(days=date_offset_days(KEYS, CLIENT_ID))
TABLES = (Client, Episode, Event, ScreenRead, Lesion, LesionFinding, Density, ImageFeature)


def d(text_: str) -> date:
    """A true date as stored: shifted by the client's offset."""
    return date.fromisoformat(text_) + OFFSET


def counts(s: Session) -> dict[str, int]:
    return {m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in TABLES}


def assert_tally_consistent(s: Session) -> None:
    _, tally = read_tally(s)
    assert nonzero(tally.items()) == count_clients(s)


def test_round_trip_of_every_event_kind(any_db_services: Services) -> None:
    with any_db_services.write_sessions() as s:
        report = import_records(s, [full_record()], KEYS)
    assert (report.created, report.rejected) == (1, 0)
    assert report.results[0].client_id == CLIENT_ID and report.results[0].outcome == "CI"
    assert report.dropped_fields == 6

    with any_db_services.sessions() as s:
        client = s.scalars(select(Client)).one()
        assert (client.client_id, client.linked, client.has_clinical) == (CLIENT_ID, True, True)
        site = s.get(Site, client.site_pk)
        assert site is not None and site.code == "SITE_A"
        assert (client.ethnicity, client.imd_decile, client.high_risk) == ("A", 4, False)
        assert client.mutation_genes == ["BRCA1"]
        assert (client.status, client.outcome, client.outcome_reason) == ("CI", "CI", "")
        assert client.raw == {"Classification": "Malignant"}

        episodes = {e.nbss_episode_id: e for e in s.scalars(select(Episode))}
        first, second, third = (episodes[episode_id(n)] for n in ("1", "2", "3"))
        assert (first.opened_date, first.closed_date) == (d("2012-05-14"), d("2012-05-28"))
        assert first.actual_opened_year is None  # the true year is dropped by default
        assert (first.type, first.action, first.is_closed, first.age_years) == ("F", "RR",
                                                                                True, 52)
        assert first.study_uids == [remap_uid(KEYS, "1.2.826.0.1.3680043.9.3218.1.1.1")]
        assert (first.status, first.outcome, first.outcome_ref_episode_pk) == ("N", "MP",
                                                                               second.pk)
        assert (second.status, second.outcome, second.end_points) == ("M", "M", ["SURG"])
        assert second.raw == {"ReferralSource": "SCR"}
        assert second.opened_date == d("2015-05-11") and second.is_post_op is False
        assert (third.status, third.outcome, third.ic_diagnosis_date) == ("CI", "CI",
                                                                          d("2017-02-01"))
        assert third.is_post_op is True and third.earliest_date == d("2017-02-01")

        events = {(e.episode_pk, e.kind, e.seq): e for e in s.scalars(select(Event))}
        kinds = sorted((k, q) for p, k, q in events if p == second.pk)
        assert kinds == [("assessment", 0), ("biopsy_fine", 0), ("biopsy_wide", 0),
                         ("clinical", 0), ("other_screening", 1), ("screening", 0),
                         ("surgery", 0)]
        wide = events[(second.pk, "biopsy_wide", 0)]
        assert (wide.left_opinion, wide.right_opinion, wide.diagnostic_set_outcome) == (
            "OM", None, "M")
        assert wide.dates == [d("2015-06-02").isoformat()] and wide.date_performed == d(
            "2015-06-02")
        other = events[(second.pk, "other_screening", 1)]
        assert other.date_performed == d("2015-05-18")
        assert sorted(k for p, k, _ in events if p == third.pk) == [
            "clinical", "interval_cancer", "surgery"]

        reads = s.scalars(select(ScreenRead).join(Event).where(
            Event.episode_pk == first.pk).order_by(ScreenRead.side)).all()
        assert [(r.side, r.opinion, r.date_taken, r.age_at_screening) for r in reads] == [
            ("L", "RN", d("2012-05-14"), 52), ("R", "RN", d("2012-05-14"), 52)]
        assert reads[0].equipment_make_model == "HOLOGIC Selenia Dimensions"
        assert reads[0].readers == reads[1].readers
        assert reads[0].readers is not None and all(
            r.startswith("RDR") and len(r) == 15 for r in reads[0].readers)

        lesions = {(les.episode_pk, les.side, les.nbss_lesion_no): les
                   for les in s.scalars(select(Lesion))}
        lesion = lesions[(second.pk, "L", "1")]
        assert (lesion.description, lesion.position, lesion.cyst_aspirated, lesion.raw) == (
            "MC", "LB3", False, None)
        assert lesions[(third.pk, "R", "2")].description is None  # named only by a finding

        findings = {(f.event.kind, f.lesion.nbss_lesion_no): f
                    for f in s.scalars(select(LesionFinding))}
        biopsy = findings[("biopsy_wide", "1")]
        assert (biopsy.opinion, biopsy.invasive_present, biopsy.invasive_components,
                biopsy.invasive_type, biopsy.disease_grade, biopsy.insitu_components,
                biopsy.dcis_grade, biopsy.malignancy_type) == (
            "B5", True, ["IDC"], "IN", "G3", ["NID"], "NDH", "b")
        assert (biopsy.her2_score, biopsy.her2_status, biopsy.er_score, biopsy.er_status,
                biopsy.pr_score, biopsy.pr_status) == ("3+", "RP", "8", "RP", "6", "RP")
        assert biopsy.raw == {"NeedleSpecimenType": "C", "LocalisationType": "US"}
        surgery = findings[("surgery", "1")]
        assert (surgery.tumour_size_mm, surgery.ductal_size_mm, surgery.nodes_positive,
                surgery.margins, surgery.mutation_codes) == (18.5, 4.0, 2, "CLEAR", ["TP53"])
        assert surgery.raw == {"TreatmentProcedure": "WLE", "DiseaseExtent": "L",
                               "LymphNode": "POS"}
        assessment = findings[("assessment", "1")]
        assert (assessment.mammo_opinion, assessment.uss_opinion, assessment.mammo_size_mm,
                assessment.date_performed) == ("R5", "U5", 14.0, d("2015-05-26"))
        assert findings[("clinical", "1")].opinion == "P4"
        assert findings[("biopsy_fine", "1")].opinion == "C4"
        in_situ = findings[("surgery", "2")]
        assert (in_situ.malignancy_type, in_situ.dcis_grade, in_situ.invasive_present) == (
            "a", "NDI", False)
        assert findings[("interval_cancer", "2")].date_performed == d("2017-02-01")

        sop = remap_uid(KEYS, "1.2.826.0.1.3680043.9.3218.1.1.1.5")
        densities = s.scalars(select(Density).order_by(Density.pk)).all()
        assert [(x.sop_instance_uid, x.side, x.density_grade, x.vbd_pct, x.measured_date,
                 x.algorithm) for x in densities] == [
            (sop, "L", "3", 7.9, d("2012-05-14"), "Volpara"),
            ("", "R", "3", 8.3, None, "Volpara")]
        assert (densities[0].fgv_cm3, densities[0].breast_vol_cm3) == (61.2, 775.0)
        features = s.scalars(select(ImageFeature).order_by(ImageFeature.pk)).all()
        assert [(f.sop_instance_uid, f.study_instance_uid, f.category, f.feature, f.value)
                for f in features] == [
            (sop, "", "technical", "blur", "mild"),
            ("", remap_uid(KEYS, "1.2.826.0.1.3680043.9.3218.1.1.1"), "biological",
             "microcalcifications", "present")]
        assert_tally_consistent(s)


def _all_text(s: Session) -> str:
    chunks = []
    for model in TABLES:
        for row in s.scalars(select(model)):
            chunks.append(json.dumps({c.key: getattr(row, c.key) for c in model.__table__.c},
                                     default=str))
    return "\n".join(chunks)


def test_no_identity_free_text_or_true_date_is_stored(deid_services: Services) -> None:
    with deid_services.write_sessions() as s:
        assert import_records(s, [full_record()], KEYS).ok
    with deid_services.sessions() as s:
        stored = _all_text(s)
    for secret in (NHS_NUMBER, LOCAL_ID, "SMITH", "Jones", "Mill Lane", "anxious", "R101",
                   "demd000001", "Mr Example", "free text", "2012-05-14", "2015-05-11",
                   "2017-02-01", "1.2.826.0.1.3680043.9.3218"):
        assert secret not in stored


def test_true_year_is_kept_only_when_asked(deid_services: Services) -> None:
    with deid_services.write_sessions() as s:
        import_records(s, [full_record()], KEYS, keep_true_year=True)
        assert s.scalar(select(Episode.actual_opened_year).where(
            Episode.nbss_episode_id == episode_id("1"))) == 2012


def test_reimport_updates_and_never_duplicates(any_db_services: Services) -> None:
    record = full_record()
    with any_db_services.write_sessions() as s:
        assert import_records(s, [record], KEYS).created == 1
        before = counts(s)
        again = import_records(s, [record], KEYS)
        assert (again.unchanged, again.results[0].outcome) == (1, "CI")
        assert counts(s) == before

        changed = full_record()
        del changed["3"]  # the interval cancer is withdrawn
        changed["2"]["BIOPSYWIDE"]["L"]["1"]["DiseaseGrade"] = "G2"
        changed["IMDDecile"] = 9
        report = import_records(s, [changed], KEYS)
        assert (report.updated, report.results[0].outcome) == (1, "M")
        after = counts(s)
        assert after["client"] == 1 and after["episode"] == 2
        assert after["event"] == before["event"] - 3
        client = s.scalars(select(Client)).one()
        assert (client.outcome, client.status, client.imd_decile) == ("M", "M", 9)
        grades = sorted(g for g in s.scalars(select(LesionFinding.disease_grade)) if g)
        assert grades == ["G2", "G3"]  # biopsy now G2, surgery still G3
        assert_tally_consistent(s)


BAD_RECORDS: list[tuple[str, Any, str]] = [
    ("not an object", ["a list"], "not a JSON object"),
    ("no identifier", {"1": {"EpisodeType": "R"}}, "no NHS number"),
    ("invalid NHS number", {"NHSNumber": "9990000019"}, "NHS number is not valid"),
    ("episode ID with spaces", {"NHSNumber": NHS_NUMBER, "episode one": {}}, "episode ID"),
    ("bad date", {"NHSNumber": NHS_NUMBER, "1": {"EpisodeOpenedDate": "2015-13-45"}},
     f"episode {episode_id('1')}: EpisodeOpenedDate is not a date"),
    ("unknown episode type", {"NHSNumber": NHS_NUMBER, "1": {"EpisodeType": "QQ"}},
     "EpisodeType is not a known code"),
    ("unknown side opinion",
     {"NHSNumber": NHS_NUMBER, "1": {"SURGERY": {"left_opinion": "OX"}}},
     f"episode {episode_id('1')} SURGERY: left_opinion is not a known code"),
    ("unknown grade",
     {"NHSNumber": NHS_NUMBER, "1": {"SURGERY": {"left_opinion": "OM",
                                                 "L": {"1": {"DiseaseGrade": "G4"}}}}},
     "SURGERY L1: DiseaseGrade is not a known code"),
    ("unknown opinion code",
     {"NHSNumber": NHS_NUMBER, "1": {"CLINICAL": {"L": {"1": {"Opinion": "Z9"}}}}},
     "Opinion is not a known opinion code"),
    ("unknown HER2 score",
     {"NHSNumber": NHS_NUMBER, "1": {"BIOPSYWIDE": {"L": {"1": {"HER2ReceptorScore": "4+"}}}}},
     "HER2ReceptorScore"),
    ("event block not an object", {"NHSNumber": NHS_NUMBER, "1": {"SURGERY": "yes"}},
     "SURGERY is not an object"),
    ("bad lesion position",
     {"NHSNumber": NHS_NUMBER, "1": {"LESION": {"L": {"1": {"LesionPosition": "LZ9"}}}}},
     "LesionPosition"),
    ("bad study UID", {"NHSNumber": NHS_NUMBER, "1": {"StudyList": ["1.2.3.abc"]}},
     "StudyList is not a UID"),
    ("IMD decile out of range", {"NHSNumber": NHS_NUMBER, "IMDDecile": 11},
     "IMDDecile is out of range"),
    ("size not a number",
     {"NHSNumber": NHS_NUMBER, "1": {"SURGERY": {"L": {"1": {"WholeSizeOfTumour": "big"}}}}},
     "WholeSizeOfTumour is not a number"),
    ("unknown density grade", {"NHSNumber": NHS_NUMBER, "DENSITY": [{"VolparaDensityGrade": "e"}]},
     "DENSITY 1: VolparaDensityGrade"),
    ("free-text feature value",
     {"NHSNumber": NHS_NUMBER, "IMAGEFEATURES": [{"Feature": "blur",
                                                   "Value": "quite blurred on the left side"}]},
     "IMAGEFEATURES 1: Value is free text"),
    ("third episode bad", {**minimal_record(), "2": minimal_record()["1"],
                           "3": {"EpisodeClosedDate": "31/02/2016"}},
     f"episode {episode_id('3')}: EpisodeClosedDate is not a date"),
]


@pytest.mark.parametrize(("name", "record", "reason"), BAD_RECORDS,
                         ids=[c[0] for c in BAD_RECORDS])
def test_bad_records_are_rejected_with_a_reason(deid_services: Services, name: str,
                                                record: Any, reason: str) -> None:
    with deid_services.write_sessions() as s:
        report = import_records(s, [record], KEYS)
        result = report.results[0]
        assert result.status == "rejected" and reason in result.reason
        assert "2015-13-45" not in result.reason and "big" not in result.reason
        assert counts(s)["client"] == 0


def test_a_bad_record_spoils_neither_its_neighbours_nor_an_earlier_import(
    any_db_services: Services,
) -> None:
    first, second = OTHER_NHS_NUMBERS[:2]
    with any_db_services.write_sessions() as s:
        assert import_records(s, [minimal_record(NHS_NUMBER)], KEYS).ok
        bad_reimport = minimal_record(NHS_NUMBER, opinion="OQ")
        report = import_records(
            s, [minimal_record(first), bad_reimport, minimal_record(second)], KEYS)
        assert [r.status for r in report.results] == ["created", "rejected", "created"]
        assert counts(s)["client"] == 3 and counts(s)["episode"] == 3
        kept = s.scalar(select(Event.left_opinion).join(Episode).join(Client).where(
            Client.client_id == CLIENT_ID))
        assert kept == "ON"


def test_a_database_failure_mid_record_leaves_nothing_of_it(deid_services: Services) -> None:
    # A real constraint of the database (a trigger) fails the first finding of the second
    # record, after its client, episodes and events were written.
    with deid_services.write_sessions() as s:
        s.execute(text(
            "CREATE TRIGGER no_b4 BEFORE INSERT ON lesion_finding WHEN NEW.opinion = 'B4' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        s.commit()
        failing = full_record(OTHER_NHS_NUMBERS[0])
        failing["2"]["BIOPSYWIDE"]["L"]["1"]["Opinion"] = "B4"
        report = import_records(s, [minimal_record(), failing, minimal_record(
            OTHER_NHS_NUMBERS[1])], KEYS)
        assert [r.status for r in report.results] == ["created", "rejected", "created"]
        assert "database error" in report.results[1].reason
    with deid_services.sessions() as s:
        assert counts(s) == {"client": 2, "episode": 2, "event": 2, "screen_read": 4,
                             "lesion": 0, "lesion_finding": 0, "density": 0,
                             "image_feature": 0}
        assert_tally_consistent(s)


def test_unlinked_client_from_site_and_local_id(deid_services: Services) -> None:
    record = minimal_record("9990000019")  # fails the check digit
    record |= {"Site": "SITE_B", "LocalID": "X99", "IssuerOfPatientID": "PAS"}
    with deid_services.write_sessions() as s:
        report = import_records(s, [record], KEYS)
        assert report.results[0].status == "created"
        client = s.scalars(select(Client)).one()
        assert client.client_id == client_pseudonym(KEYS, None, "SITE_B|PAS", "X99").client_id
        assert client.client_id.startswith("UNLK") and client.linked is False


def test_import_paths_reads_files_folders_and_json_lines(deid_services: Services,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "DATA" / "demd1"
    data.mkdir(parents=True)
    (data / "NBSS_demd1.json").write_text(json.dumps(minimal_record()))
    (data / "IMAGEDB_demd1.json").write_text("{}")
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps(minimal_record(OTHER_NHS_NUMBERS[0])) + "\n\n{broken\n")
    array = tmp_path / "array.json"
    array.write_text(json.dumps([minimal_record(OTHER_NHS_NUMBERS[1]), {"no": "id"}]))
    with deid_services.write_sessions() as s:
        report = import_paths(s, [tmp_path / "DATA", lines, array], KEYS)
    by_source = {r.source: (r.status, r.reason) for r in report.results}
    assert by_source == {
        "NBSS_demd1.json": ("created", ""),
        "more.jsonl:1": ("created", ""),
        "more.jsonl:3": ("rejected", "not valid JSON (line 1)"),
        "array.json[1]": ("created", ""),
        "array.json[2]": ("rejected", "record: no NHS number, and no site and local ID"),
    }
    assert report.to_dict()["created"] == 3
