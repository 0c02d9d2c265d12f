"""The Flask application factory: blueprints under the DICOMweb base path."""

from __future__ import annotations

from typing import Any

from flask import Flask, g

from omipacs.retrieve.frames import HeaderCache
from omipacs.services import Services
from omipacs.web import api, capabilities, cors, proxy, qido, stow, wado
from omipacs.web.errors import register_error_handlers


def create_app(services: Services) -> Flask:
    """A WSGI app serving DICOMweb for ``services``."""
    app = Flask("omipacs", static_folder=None)  # no /static route: nothing to serve
    app.extensions["omipacs"] = services
    app.extensions["omipacs.headers"] = HeaderCache()
    app.config["MAX_CONTENT_LENGTH"] = None  # STOW enforces its own, streaming limits
    base = services.settings.http.base_path.rstrip("/")
    for blueprint in (qido.bp, wado.bp, stow.bp, capabilities.bp):
        app.register_blueprint(blueprint, url_prefix=base)
        # Each saved cohort is served as its own DICOMweb root showing only its members.
        app.register_blueprint(
            blueprint, url_prefix=f"/cohorts/<int:cohort_id>{base}", name=f"cohort_{blueprint.name}"
        )
    app.register_blueprint(api.bp, url_prefix="/api/v1")

    @app.url_value_preprocessor
    def _cohort(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and endpoint and endpoint.startswith("cohort_") and "cohort_id" in values:
            g.cohort_id = values.pop("cohort_id")

    cors.install(app, services.settings.http.cors_origins)
    proxy.install(app, services.settings.http)
    register_error_handlers(app)
    return app
