"""C-STORE data sets are spooled into the archive's spool without changing the process's
temporary directory (``tempfile.tempdir``)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
from pynetdicom import AE, dimse_messages

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.dimse import scp

pytestmark = pytest.mark.slow


def test_data_sets_land_in_the_spool_and_tempdir_is_untouched(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(dimse_messages, "NamedTemporaryFile", tempfile.NamedTemporaryFile)
    services = open_archive(settings)
    spooled: list[Path] = []
    real = services.pipeline.ingest_spooled

    def watch(path: Path, origin: object) -> object:
        spooled.append(Path(path).parent)
        return real(path, origin)  # type: ignore[arg-type]

    services.pipeline.ingest_spooled = watch  # type: ignore[assignment, method-assign]
    server = scp.start(services)
    try:
        assert tempfile.tempdir is None
        patched = dimse_messages.NamedTemporaryFile
        assert isinstance(patched, functools.partial)
        assert patched.keywords["dir"] == str(services.spool.dir)
        ds = factory.make_mammo(rows=64, columns=64)
        ae = AE(ae_title="PYNETDICOM")
        ae.add_requested_context(ds.SOPClassUID)
        assoc = ae.associate("127.0.0.1", settings.dimse.port, ae_title="OMIPACS")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(ds).Status == 0
        finally:
            assoc.release()
        assert spooled == [services.spool.dir]
        assert tempfile.gettempdir() != str(services.spool.dir)
    finally:
        server.shutdown()
        services.close()


def test_a_changed_pynetdicom_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(dimse_messages, "NamedTemporaryFile")
    with pytest.raises(RuntimeError, match="NamedTemporaryFile"):
        scp.spool_c_store_data_sets(tmp_path)
