"""Index rows for a demo manifest, written directly as the de-identified pipeline would.

Tests of statistics and cohorts need many clients on both databases; generating and
de-identifying real files for each would take minutes. These rows carry exactly what
the pipeline stores for the manifest's files after de-identification with ``keys``
(client pseudonym as Patient ID, remapped UIDs, shifted study dates, the vendor's
manufacturer, view and presentation intent), which
``tests/clinical/test_consistency.py`` checks against the real pipeline.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from sqlalchemy.orm import Session

from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import client_pseudonym, date_offset_days, remap_uid
from omipacs.demo.generate import DemoClient, DemoManifest, DemoStudy
from omipacs.demo.vendors import VENDORS
from omipacs.dicom.uids import BREAST_TOMOSYNTHESIS
from omipacs.index import repository
from omipacs.index.extract import InstanceFacts


def client_id(keys: DeidKeys, client: DemoClient) -> str:
    return client_pseudonym(keys, client.nhs_number, "", "").client_id


def shifted(keys: DeidKeys, client: DemoClient, day: date) -> date:
    return day + timedelta(days=date_offset_days(keys, client_id(keys, client)))


def study_uid(keys: DeidKeys, study: DemoStudy) -> str:
    return remap_uid(keys, study.study_uid)


def _age(client: DemoClient, on: date) -> str:
    birth = client.patient.birth_date
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def index_manifest(session: Session, manifest: DemoManifest, keys: DeidKeys,
                   clients: list[DemoClient] | None = None) -> None:
    """Add the de-identified index rows of (some of) the manifest's instances."""
    for client in clients if clients is not None else manifest.clients:
        cid = client_id(keys, client)
        profile = VENDORS[client.vendor]
        for study in client.studies:
            for inst in study.instances:
                intent = "FOR PRESENTATION" if inst.processed else "FOR PROCESSING"
                dbt = inst.sop_class_uid == BREAST_TOMOSYNTHESIS
                facts = InstanceFacts(
                    patient={"patient_id": cid, "patient_name": cid,
                             "patient_name_search": cid, "sex": "F"},
                    study={"study_instance_uid": remap_uid(keys, study.study_uid),
                           "study_date": shifted(keys, client, study.date),
                           "patient_age": _age(client, study.date)},
                    series={"series_instance_uid": remap_uid(keys, inst.series_uid),
                            "modality": "MG", "presentation_intent_type": intent},
                    instance={"sop_instance_uid": remap_uid(keys, inst.sop_uid),
                              "sop_class_uid": inst.sop_class_uid,
                              "laterality": inst.laterality,
                              "view_position": "" if dbt else inst.view,
                              "presentation_intent_type": intent,
                              "manufacturer": profile.manufacturer,
                              "manufacturer_model_name": profile.model,
                              "number_of_frames": inst.frames},
                )
                key = hashlib.sha256(inst.sop_uid.encode()).hexdigest()
                repository.add_instance(
                    session, facts,
                    storage={"transfer_syntax_uid": "1.2.840.10008.1.2.1", "blob_key": key,
                             "size_bytes": 0, "sha256": key, "dataset_offset": 0},
                    metadata={"dicom_json": b"", "frames": None, "pixel": None},
                )
