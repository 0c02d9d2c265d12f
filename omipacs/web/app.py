"""The Flask application factory: blueprints under the DICOMweb base path."""

from __future__ import annotations

from typing import Any

from flask import Flask, g

from omipacs.retrieve.frames import HeaderCache
from omipacs.services import Services
from omipacs.web import (
    admin,
    api,
    auth,
    capabilities,
    changes,
    cors,
    proxy,
    qido,
    releases,
    requests,
    stow,
    ui,
    wado,
    withdrawals,
)
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
    for blueprint in (qido.bp, wado.bp, capabilities.bp):
        # Read-only roots: each saved cohort shows only its members, each licence its
        # members within its data scopes (what OHIF is pointed at for a researcher).
        app.register_blueprint(
            blueprint, url_prefix=f"/cohorts/<int:cohort_id>{base}", name=f"cohort_{blueprint.name}"
        )
        app.register_blueprint(
            blueprint,
            url_prefix=f"/licences/<int:licence_id>{base}",
            name=f"licence_{blueprint.name}",
        )
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    app.register_blueprint(changes.bp, url_prefix="/api/v1")
    app.register_blueprint(withdrawals.bp, url_prefix="/api/v1")
    app.register_blueprint(admin.bp, url_prefix="/api/v1/admin")
    app.register_blueprint(releases.bp, url_prefix="/api/v1")
    app.register_blueprint(requests.bp, url_prefix="/api/v1/access-requests")
    app.register_blueprint(ui.bp, url_prefix="/ui")

    @app.url_value_preprocessor
    def _root(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if not values or not endpoint:
            return
        if endpoint.startswith("cohort_") and "cohort_id" in values:
            g.cohort_id = values.pop("cohort_id")
        elif endpoint.startswith("licence_") and "licence_id" in values:
            g.licence_id = values.pop("licence_id")

    cors.install(app, services.settings.http.cors_origins)
    proxy.install(app, services.settings.http)
    auth.install(app, services)
    register_error_handlers(app)
    return app
