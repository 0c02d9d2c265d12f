"""What a curator sees of a held instance (header summary, rendered pixels) and its
release or purge, on a real archive with de-identification and quarantine wired in."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.errors import BadRequest, NotFound
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.quarantine import Quarantine
from omipacs.ingest.result import IngestOutcome
from omipacs.retrieve.review import header_summary, preview
from omipacs.services import Services

SITE = IngestOrigin(OriginKind.DIMSE, ae_title="SITE_A", deidentify=True)


@pytest.fixture
def archive(settings: Settings) -> Iterator[Services]:
    services = open_archive(settings)
    yield services
    services.close()


def _hold(
    services: Services, tmp_path: Path, name: str = "sc"
) -> tuple[Quarantine, str, FileDataset]:
    """A screenshot with the patient's name drawn in, without BurnedInAnnotation: held."""
    ds = factory.make_secondary_capture(burned_in_annotation=None, rows=96, columns=128)
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = services.pipeline.ingest_file(path, SITE)
    assert result.outcome is IngestOutcome.QUARANTINED
    quarantine = Quarantine(services.settings.storage.root)
    return quarantine, quarantine.entries()[-1].id, ds


def test_the_header_summary_describes_the_image_and_names_nobody(
    archive: Services, tmp_path: Path
) -> None:
    quarantine, entry_id, ds = _hold(archive, tmp_path)
    summary = {i.name: i.value for i in header_summary(quarantine.path(entry_id))}
    assert summary["Rows"] == "96" and summary["Columns"] == "128"
    assert summary["SOP Class"].startswith("Secondary Capture Image Storage")
    assert "BurnedInAnnotation" not in summary  # absent: the reason it was held
    shown = " ".join(f"{k} {v}" for k, v in summary.items())
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID",
                    "SOPInstanceUID", "StudyDate", "AccessionNumber"):
        value = str(getattr(ds, keyword, "") or "")
        if value:
            assert value not in shown, keyword


def test_the_preview_shows_the_held_pixels(archive: Services, tmp_path: Path) -> None:
    quarantine, entry_id, ds = _hold(archive, tmp_path)
    png = preview(quarantine.path(entry_id))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (128, 96)
    # 8-bit MONOCHROME2 without a window: shown as stored, so the drawn text is there.
    stored = np.asarray(ds.pixel_array, dtype=np.float64)
    shown = np.asarray(image.convert("L"), dtype=np.float64)
    low, high = stored.min(), stored.max()
    expected = np.rint((stored - low) * 255.0 / (high - low))
    assert np.abs(shown - expected).max() <= 1
    small = Image.open(io.BytesIO(preview(quarantine.path(entry_id), side=64)))
    assert small.size == (64, 48)
    with pytest.raises(NotFound):
        preview(quarantine.path(entry_id), frame=2)
    with pytest.raises(BadRequest):
        preview(quarantine.path(entry_id), side=0)


def test_release_files_the_entry_once_with_its_header_deidentified(
    archive: Services, tmp_path: Path
) -> None:
    quarantine, entry_id, ds = _hold(archive, tmp_path)
    entry, result = quarantine.release(entry_id, archive.pipeline.ingest_file)
    assert entry.id == entry_id
    assert result.outcome is IngestOutcome.STORED
    assert result.sop_instance_uid and result.sop_instance_uid != ds.SOPInstanceUID
    assert all(e.id != entry_id for e in quarantine.entries())
    with pytest.raises(NotFound):
        quarantine.release(entry_id, archive.pipeline.ingest_file)


def test_a_failed_release_keeps_the_entry(archive: Services, tmp_path: Path) -> None:
    quarantine, entry_id, _ = _hold(archive, tmp_path)

    def failing(path: Path, origin: IngestOrigin) -> object:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        quarantine.release(entry_id, failing)  # type: ignore[arg-type]
    assert quarantine.get(entry_id).id == entry_id
    assert quarantine.path(entry_id).exists()


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"])
def test_the_preview_of_each_frame_of_a_tomosynthesis_stack(tmp_path: Path, syntax: str) -> None:
    """Native and JPEG 2000 multi-frame objects: frame k is frame k, as /rendered shows it."""
    from omipacs.retrieve.render import render_frame

    ds = factory.make_dbt(frames=4, rows=64, columns=48, transfer_syntax=syntax)
    path = tmp_path / "dbt.dcm"
    ds.save_as(path, enforce_file_format=True)
    stack = ds.pixel_array
    shown = []
    for k in (1, 3, 4):
        png = preview(path, frame=k)
        expected = render_frame(ds, stack[k - 1], media_type="image/png", frame_index=k - 1)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))),
                              np.asarray(Image.open(io.BytesIO(expected))))
        shown.append(png)
    assert len(set(shown)) == 3
    summary = {i.name: i.value for i in header_summary(path)}
    assert summary["NumberOfFrames"] == "4"
    with pytest.raises(NotFound):
        preview(path, frame=5)
