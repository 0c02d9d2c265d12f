"""The Flask application factory: blueprints under the DICOMweb base path."""

from __future__ import annotations

from flask import Flask

from omipacs.retrieve.frames import HeaderCache
from omipacs.services import Services
from omipacs.web import capabilities, cors, qido, stow, wado
from omipacs.web.errors import register_error_handlers


def create_app(services: Services) -> Flask:
    """A WSGI app serving DICOMweb for ``services``."""
    app = Flask("omipacs")
    app.extensions["omipacs"] = services
    app.extensions["omipacs.headers"] = HeaderCache()
    app.config["MAX_CONTENT_LENGTH"] = None  # STOW enforces its own, streaming limits
    base = services.settings.http.base_path.rstrip("/")
    for blueprint in (qido.bp, wado.bp, stow.bp, capabilities.bp):
        app.register_blueprint(blueprint, url_prefix=base)
    cors.install(app, services.settings.http.cors_origins)
    register_error_handlers(app)
    return app
