"""The brochure's tables from the live index, against a count made here from the manifest."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from sqlalchemy.orm import Session

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.imaging import rebuild_imaging, sync_imaging
from omipacs.clinical.importer import import_records
from omipacs.clinical.stats import StatsTables, stats
from omipacs.clinical.tally import count_clients, nonzero, read_tally, set_marked
from omipacs.demo.clinical import clinical_records_for, planned_outcomes
from omipacs.demo.generate import DemoManifest, plan_demo
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS

SEED = 5


def expected_tables(manifest: DemoManifest, with_records: set[int], imaged: set[int],
                    marked: set[int]) -> dict[str, dict[str, int]]:
    """Count by hand: outcome from the generator's plan (U without a record), 2D if a
    screening study is indexed, 3D if an assessment (DBT) study is."""
    plan = planned_outcomes(manifest, SEED)
    tables: dict[str, Counter[str]] = {"2d": Counter(), "3d": Counter(), "marked": Counter()}
    for client in manifest.clients:
        known = client.index in with_records or client.index in imaged
        if not known:
            continue
        outcome = plan[client.index].value if client.index in with_records else "U"
        if client.index in imaged:
            if any(st.kind == "screening" for st in client.studies):
                tables["2d"][outcome] += 1
            if any(st.kind == "assessment" for st in client.studies):
                tables["3d"][outcome] += 1
        if client.index in marked:
            tables["marked"][outcome] += 1
    return {name: {o.value: counter[o.value] for o in CaseOutcome}
            for name, counter in tables.items()}


def observed(result: StatsTables) -> dict[str, dict[str, int]]:
    return {t.name: {row["outcome"]: row["cases"] for row in t.rows()} for t in result.tables}


def assert_tally_consistent(s: Session) -> None:
    _, tally = read_tally(s)
    assert nonzero(tally.items()) == count_clients(s)


def test_stats_equal_an_independent_count(any_db_services: Services, tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=40, seed=SEED, dbt_fraction=0.25)
    clients = manifest.clients
    records = clinical_records_for(manifest, SEED)
    with_records = set(range(4, 40))  # clients 0-3 have images only
    synced, late = clients[:30], clients[30:]
    with any_db_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS, clients=list(synced))
        sync_imaging(s)
        s.commit()
        report = import_records(s, [records[i] for i in sorted(with_records)], KEYS)
        assert report.ok and report.created == 36
        # the imported outcomes are the generator's plan
        plan = planned_outcomes(manifest, SEED)
        assert [r.outcome for r in report.results] == [plan[i].value for i in
                                                       sorted(with_records)]
        # images of ten more clients arrive and are not synced yet
        synth.index_manifest(s, manifest, KEYS, clients=list(late))
        s.commit()

    imaged = set(range(40))
    with any_db_services.sessions() as s:
        live = stats(s)
    assert observed(live) == expected_tables(manifest, with_records, imaged, set())
    assert live.clients == 40
    # the seed's proportions: from 20 clients every class is present
    assert all(live.two_d.counts.get(o, 0) >= 1 for o in CaseOutcome)

    with any_db_services.write_sessions() as s:
        sync_imaging(s)
        set_marked(s, synth.client_id(KEYS, clients[5]))
        set_marked(s, synth.client_id(KEYS, clients[6]))
        set_marked(s, synth.client_id(KEYS, clients[6]))  # marking twice counts once
        s.commit()
        assert_tally_consistent(s)
    with any_db_services.sessions() as s:
        assert observed(stats(s)) == expected_tables(manifest, with_records, imaged, {5, 6})

    with any_db_services.write_sessions() as s:
        before = read_tally(s)[1]
        rebuild_imaging(s)
        s.commit()
        assert nonzero(read_tally(s)[1].items()) == nonzero(before.items())
        assert observed(stats(s)) == expected_tables(manifest, with_records, imaged, {5, 6})


def test_stats_of_an_empty_archive(any_db_services: Services) -> None:
    with any_db_services.sessions() as s:
        result = stats(s)
    assert result.clients == 0 and all(t.total == 0 for t in result.tables)
    assert [r["label"] for r in result.two_d.rows()] == [
        "Normal", "Benign", "Malignant", "Interval Cancers", "Unknown"]
    assert result.marked.rows()[3]["label"] == "Prior to Interval Cancer Marked"


def test_rows_json_and_csv(deid_services: Services, tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=3, seed=SEED, dbt_fraction=0.34)
    with deid_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS)
        s.commit()
        result = stats(s)
    rows = result.to_rows()
    assert len(rows) == 15 and rows[0] == {"table": "2d", "outcome": "N", "label": "Normal",
                                           "cases": 0}
    assert rows[4] == {"table": "2d", "outcome": "U", "label": "Unknown", "cases": 3}
    parsed = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert [dict(r) for r in parsed] == [{k: str(v) for k, v in r.items()} for r in rows]
    data = result.to_dict()
    assert data["clients"] == 3 and data["tables"]["2d"]["total"] == 3
    assert data["tables"]["3d"]["total"] == 1
