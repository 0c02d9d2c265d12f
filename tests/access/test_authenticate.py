"""Resolving bearer values: our tokens, and JWTs from an OpenID Connect issuer.

The issuer's JWKS is served by a real HTTP server on loopback; tokens are signed with a
fresh RSA key by PyJWT, as an identity provider would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update

from omipacs.access import admin
from omipacs.access.authenticate import Authenticator, utcnow
from omipacs.access.models import Token
from omipacs.access.policy import Role
from omipacs.config import AuthSettings, OidcSettings
from omipacs.errors import ConfigurationError, Unauthorized
from omipacs.services import Services

ISSUER = "https://login.example.ac.uk/realms/research"
AUDIENCE = "omipacs"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    thread.join(timeout=10)


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300,
            "email": "r@lab.example", **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_oidc_tokens_are_verified_and_mapped_to_users(
    services: Services, key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    with services.write_sessions.begin() as s:
        admin.add_user(s, "r@lab.example", "researcher")
        admin.add_user(s, "gone@lab.example", "researcher")
        admin.disable_user(s, "gone@lab.example")
    auth = Authenticator(AuthSettings(
        mode="token", oidc=OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url)
    ))
    who = auth.authenticate(services.sessions, f"Bearer {_jwt(key)}")
    assert who.email == "r@lab.example" and who.role is Role.RESEARCHER
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "wrong audience": _jwt(key, aud="someone-else"),
        "wrong issuer": _jwt(key, iss="https://evil.example"),
        "expired": _jwt(key, exp=int(time.time()) - 3600),
        "wrong key": _jwt(other),
        "unknown user": _jwt(key, email="nobody@lab.example"),
        "disabled user": _jwt(key, email="gone@lab.example"),
        "no claim": _jwt(key, email=None),
    }
    for why, value in refused.items():
        with pytest.raises(Unauthorized):
            auth.authenticate(services.sessions, f"Bearer {value}")
            pytest.fail(why)


def test_oidc_settings_must_be_complete() -> None:
    with pytest.raises(ConfigurationError):
        AuthSettings(mode="token", oidc=OidcSettings(issuer=ISSUER))
    with pytest.raises(ConfigurationError):
        AuthSettings(mode="open")


def test_token_states(services: Services) -> None:
    with services.write_sessions.begin() as s:
        admin.add_user(s, "c@a.example", "curator")
        good, _ = admin.create_token(s, "c@a.example")
        old, info = admin.create_token(s, "c@a.example")
        s.execute(update(Token).where(Token.pk == info.id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    auth = Authenticator(AuthSettings(mode="token", cache_seconds=0))
    assert auth.authenticate(services.sessions, f"Bearer {good}").role is Role.CURATOR
    assert auth.authenticate(services.sessions, f"bearer {good}").email == "c@a.example"
    for header in (None, "", "Basic abc", f"Bearer {old}", "Bearer omi_" + "A" * 43,
                   f"Bearer {good[:-1]}", "Bearer " + "x" * 9000):
        with pytest.raises(Unauthorized):
            auth.authenticate(services.sessions, header)
    # In none mode nobody authenticates: the local admin.
    local = Authenticator(AuthSettings(mode="none")).authenticate(services.sessions, None)
    assert local.role is Role.ADMIN and local.email == "local"
