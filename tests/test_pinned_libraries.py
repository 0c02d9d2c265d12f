"""The library internals omipacs relies on are still there, as they were written against.

omipacs replaces or extends a few private parts of libraries where no public extension
point does the job (each is pinned in pyproject.toml):

- ``omipacs.dimse.guard`` replaces pynetdicom's ``DULServiceProvider._read_pdu_data``;
- ``omipacs.web.gworker`` subclasses gunicorn's gthread worker (``handle``,
  ``handle_request``, ``init_process``, ``DEFAULT_WORKER_DATA_TIMEOUT``);
- ``omipacs.web.sendfile`` writes file ranges on ``environ["gunicorn.socket"]`` between
  the chunks gunicorn writes itself.

These tests fail loudly, naming what changed, when an upgrade moves any of it, instead
of letting the server misbehave quietly.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import gunicorn
import gunicorn.util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers import gthread
from pynetdicom import dul

from omipacs.dimse import guard


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_pynetdicom_is_the_version_the_pdu_reader_replaces() -> None:
    assert version("pynetdicom").startswith("3.0."), "re-check omipacs.dimse.guard"
    provider = dul.DULServiceProvider
    # The original, whether or not an in-process SCP of this test run installed ours.
    assert params(guard.ORIGINAL_READER) == ["self"]
    assert params(provider._decode_pdu) == ["self", "bytestream"]
    source = inspect.getsource(provider)
    # The reactor calls the reader by name, and the reader's outputs are these queues.
    assert "self._read_pdu_data()" in source
    assert "self.event_queue.put(" in source
    assert "self._recv_pdu.put(pdu)" in source


def test_gunicorn_is_the_version_the_worker_extends() -> None:
    assert gunicorn.__version__.startswith("27.0."), "re-check omipacs.web.gworker"
    worker = gthread.ThreadWorker
    assert params(worker.handle) == ["self", "conn"]
    assert params(worker.handle_request) == ["self", "req", "conn"]
    assert params(worker.init_process) == ["self"]
    handle = inspect.getsource(worker.handle)
    # handle() reads the head (next(conn.parser)) and then calls handle_request.
    assert "conn.wait_for_data(DEFAULT_WORKER_DATA_TIMEOUT)" in handle
    assert "next(conn.parser)" in handle
    assert "self.handle_request(req, conn)" in handle
    assert isinstance(gthread.DEFAULT_WORKER_DATA_TIMEOUT, float)
    # Ended connections are closed gracefully in the main loop (the worker does it in
    # its thread first, so a silent peer cannot stall that loop).
    assert "conn.close(graceful=True)" in inspect.getsource(worker.finish_request)
    assert params(gunicorn.util.close_graceful)[:1] == ["sock"]
    assert "self.sock = sock" in inspect.getsource(gthread.TConn.__init__)
    assert "self.client = client" in inspect.getsource(gthread.TConn.__init__)


def test_gunicorn_hands_the_app_its_socket_and_writes_chunks_as_they_come() -> None:
    assert '"gunicorn.socket": sock' in inspect.getsource(gunicorn_wsgi.default_environ)
    request = inspect.getsource(gthread.ThreadWorker.handle_request)
    # Each chunk the app yields is written before the next one is asked for, and a
    # wsgi.file_wrapper body goes to write_file (sendfile).
    assert "for item in respiter:\n                        resp.write(item)" in request
    assert "resp.write_file(respiter)" in request
    write = inspect.getsource(gunicorn_wsgi.Response.write)
    assert "self._emit_body(arg)" in write
    assert "util.write(self.sock, data, self.chunked)" in inspect.getsource(
        gunicorn_wsgi.Response._emit_body
    )
