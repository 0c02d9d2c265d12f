"""Pixels that may identify, through the running archive (C-STORE): burned-in text beyond
Secondary Capture, the allow-list, and overlay bits hidden in unused pixel bits."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pydicom
import pytest
import requests

from omipacs.config import BurnedInAllow
from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.demo import factory
from tests.conftest import ServerProcess, make_settings, start_server
from tests.deid.test_linking import cli, send

pytestmark = pytest.mark.slow

US = "1.2.840.10008.5.1.4.1.1.6.1"


def ultrasound(burned_in: str | None, manufacturer: str = "Acme Medical") -> pydicom.Dataset:
    ds = factory.make_secondary_capture(burned_in_annotation=burned_in, rows=64, columns=64)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    return ds


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("pixels")
    settings = make_settings(root)
    allow = (BurnedInAllow(US, "Known Clean Ultrasound Ltd"),)
    settings = replace(settings, deid=replace(settings.deid, burned_in_allow=allow))
    srv = start_server(settings, root)
    yield srv
    srv.stop()


def _published(server: ServerProcess, ds: pydicom.Dataset) -> requests.Response:
    keys = load_keys(server.settings.deid)
    uids = [remap_uid(keys, str(ds.get(k)))
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    url = f"{server.base_url}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}"
    return requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"},
                        timeout=30)


def test_ultrasound_without_burned_in_no_is_quarantined(server: ServerProcess) -> None:
    silent, clean, allowed = (ultrasound(None), ultrasound("NO"),
                              ultrasound(None, "KNOWN CLEAN ULTRASOUND LTD"))
    before = len(json.loads(cli(server, "quarantine", "list", "--json").stdout))
    assert send(server.dimse_port, "SITE_A", [silent, clean, allowed]) == [0, 0, 0]
    assert _published(server, silent).status_code == 404
    assert _published(server, clean).status_code == 200
    assert _published(server, allowed).status_code == 200  # allow-listed maker
    held = json.loads(cli(server, "quarantine", "list", "--json").stdout)
    assert len(held) == before + 1 and held[-1]["sop_class_uid"] == US


def test_overlay_bits_in_unused_high_bits_are_not_served(server: ServerProcess) -> None:
    ds = factory.make_mammo(rows=32, columns=32)
    words = np.frombuffer(ds.PixelData, "<u2").copy()
    image = words.copy()
    words[::3] |= 0x8000  # an overlay (text) drawn into bit 15
    ds.PixelData = words.tobytes()
    ds.add_new(0x60000010, "US", 32)
    ds.add_new(0x60000011, "US", 32)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 15)
    assert send(server.dimse_port, "SITE_A", [ds]) == [0]
    r = _published(server, ds)
    assert r.status_code == 200
    stored = pydicom.dcmread(io.BytesIO(r.content))
    assert not [t for t in stored.keys() if t.group == 0x6000]
    assert np.array_equal(np.frombuffer(stored.PixelData, "<u2"), image)
