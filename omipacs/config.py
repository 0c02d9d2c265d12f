"""Typed, frozen settings read once from ``config.toml``.

Precedence is defaults < ``config.toml`` < environment (``OMIPACS_<SECTION>_<KEY>``).
Relative paths are resolved against the directory of the config file, so the archive
behaves the same whatever the working directory. Services receive the settings (or the
part they need) as arguments; nothing reads configuration from a global.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omipacs.errors import ConfigurationError

ENV_PREFIX = "OMIPACS_"


@dataclass(frozen=True)
class StorageSettings:
    """Where bytes live."""

    root: Path = Path("storage")
    """Data root: blobs, spool, the default SQLite index and the quarantine."""
    url: str = ""
    """Optional fsspec URL (``s3://bucket/prefix``, ``gs://bucket/prefix``) for blobs;
    empty means files under root."""
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    """``[storage.options]``: keyword arguments for the fsspec filesystem of ``url``
    (s3fs: ``key``, ``secret``, ``endpoint_url``, ``client_kwargs``; gcsfs: ``project``,
    ``token``, ``endpoint_url``). Credentials are better left to the environment
    (AWS_*, GOOGLE_APPLICATION_CREDENTIALS) than written here."""
    upload_block_bytes: int = 16 << 20
    """Part size for multipart uploads to an object store: the most an upload buffers."""
    read_block_bytes: int = 1 << 16
    """Read-ahead for ranged reads from an object store: a frame read fetches its own
    bytes plus at most this many."""
    max_instance_bytes: int = 4 * 1024**3
    """Largest single instance accepted (declared pixel size included)."""
    max_frame_bytes: int = 64 * 1024**2
    """Largest decoded frame accepted (Rows x Columns x samples x bits, checked against
    the compressed stream's own header at ingest): what one decode may allocate."""
    min_free_bytes: int = 512 * 1024**2
    """Free space kept on the storage filesystem: below it ingest is refused cleanly
    (C-STORE 0xA700, STOW-RS 507) and reads go on. 0 turns the reserve off."""
    fsync: bool = True
    """fsync files and directories before acknowledging (turn off only for throwaway demos)."""


@dataclass(frozen=True)
class DatabaseSettings:
    """The index."""

    url: str = ""
    """SQLAlchemy URL; empty means ``sqlite:///<storage.root>/index.sqlite``."""
    echo: bool = False
    pool_size: int = 10


@dataclass(frozen=True)
class Peer:
    """A DICOM peer allowed to associate."""

    ae_title: str
    host: str = ""
    """If set, the peer must connect from this address."""
    deidentify: bool = True
    """True for screening sites (identifiable data); False for tools that send objects
    made against the archive's own pseudonymous UIDs (a viewer saving an SR)."""
    patient_id_is_nhs_number: bool = False
    """The site puts the NHS number in Patient ID with no Issuer of Patient ID saying so.
    Without this, only identifiers whose issuer or type names the NHS are read as NHS
    numbers: a bare 10-digit local number passes the check digit one time in eleven."""
    port: int = 0
    """The peer's own storage SCP port: set it (and ``host``) to make the peer a C-MOVE
    destination and an ``omipacs send`` target; 0 means the archive never calls it."""
    tls_subject: str = ""
    """With DICOM TLS and client certificates: the common name the peer's certificate
    must carry (empty: any certificate the CA signed)."""
    licence: int = 0
    """Query/Retrieve under this licence only (a researcher's workstation): its members
    within its data scopes. 0: the whole archive (an archive-side tool)."""


@dataclass(frozen=True)
class DimseSettings:
    """The DIMSE SCP."""

    ae_title: str = "OMIPACS"
    host: str = "127.0.0.1"
    port: int = 11112
    max_associations: int = 10
    """Established associations at once; connections still waiting for their
    A-ASSOCIATE-RQ do not count (see max_pending_*). The limit holds across all
    SCP processes."""
    request_timeout: float = 10.0
    """Seconds a new connection has to send its A-ASSOCIATE-RQ before it is closed."""
    max_pending_per_address: int = 16
    """Connections from one address still waiting for their association request (a
    site may open several associations at once; a silent host only blocks itself)."""
    max_pending_connections: int = 64
    """Connections from all addresses still waiting for their association request."""
    processes: int = 1
    """SCP processes accepting from one listening socket, each association taken by the
    least loaded one: more than one uses more cores for C-STORE; 1 runs the SCP inside
    the ``omipacs serve`` process."""
    acse_timeout: float = 30.0
    dimse_timeout: float = 30.0
    network_timeout: float = 60.0
    max_pdu_size: int = 1048576
    """Largest P-DATA PDU we accept; a peer announcing a bigger one is aborted."""
    require_called_ae_title: bool = True
    allow_any_peer: bool = False
    """Development only: accept any calling AE. Refused on a non-loopback address."""
    peers: tuple[Peer, ...] = ()
    max_find_results: int = 1000
    """Most C-FIND matches returned; past it the answer ends with 0xA700 and a comment."""
    tls_cert: Path | None = None
    """DICOM TLS (PS3.15 B.1): the archive's certificate chain (PEM). With it and
    ``tls_key`` the SCP speaks only TLS (TLS 1.2 or newer)."""
    tls_key: Path | None = None
    tls_ca: Path | None = None
    """CA certificates (PEM) that sign the sites' client certificates: when set, every
    peer must present one (mutual TLS), and ``[[dimse.peers]] tls_subject`` can pin it."""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigurationError("dimse: tls_cert and tls_key go together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ConfigurationError("dimse.tls_ca needs tls_cert and tls_key")


@dataclass(frozen=True)
class HttpSettings:
    """The DICOMweb server."""

    host: str = "127.0.0.1"
    port: int = 8042
    base_path: str = "/dicom-web"
    insecure: bool = False
    """Ignored: a non-loopback address needs ``[auth] mode = "token"``."""
    workers: int = 2
    """HTTP worker processes (gunicorn, pre-forked); each serves ``threads`` requests at once."""
    threads: int = 32
    """Threads per worker. Threads waiting on a slow client cost little memory and no CPU;
    enough of them keep the archive answering while some clients stall."""
    timeout: float = 30.0
    """Seconds a request body read or a response write may make no progress before the
    connection is dropped (a client that stops reading frees its thread)."""
    header_timeout: float = 10.0
    """Seconds from a connection's first byte to a complete request head (slow-header
    clients are cut off)."""
    keepalive: int = 5
    """Seconds an idle kept-alive connection stays open (it holds no thread meanwhile)."""
    max_client_requests: int = 8
    """Threads of a worker one client address may hold at once (reading a request,
    running it, writing a response) before its next connection gets 503; 0 turns the
    limit off (set 0 behind a proxy, where every request comes from the proxy)."""
    tls_cert: Path | None = None
    """PEM certificate chain: serve HTTPS directly (else plain HTTP, e.g. behind a proxy)."""
    tls_key: Path | None = None
    """PEM private key for ``tls_cert``."""
    cors_origins: tuple[str, ...] = ()
    """Web origins (``https://viewer.example.org``) allowed to call the archive from a
    browser, e.g. a viewer on another host; empty means none. ``["*"]`` allows any origin
    but never with credentials (see :mod:`omipacs.web.cors`)."""
    public_url: str = ""
    """The URL clients use to reach the server (``https://pacs.example.org/archive``);
    when set, absolute URLs in responses (BulkDataURI, RetrieveURL) are built from it and
    request headers are ignored for them."""
    trust_proxy_headers: bool = False
    """Believe X-Forwarded-For/-Proto/-Host/-Port/-Prefix (only behind reverse proxies you
    run, which every client must go through)."""
    trusted_proxies: int = 1
    """How many proxies in front of the archive append to X-Forwarded-*: only that many
    right-most values are believed."""
    max_request_bytes: int = 8 * 1024**3
    max_parts: int = 1000
    stow_deidentify: bool = True
    """De-identify STOW-RS uploads, like everything a screening site sends. Set false only
    where STOW is used by viewers and tools saving objects (SRs, SEGs) made against the
    archive's own pseudonymous UIDs, which must not be remapped again; even then an
    upload whose Patient Name or ID is not a pseudonym of this archive is refused."""
    qido_default_limit: int = 100
    qido_max_limit: int = 1000
    max_json_bytes: int = 16 * 1024**2
    """Largest JSON request body (clinical records, marks, cohorts); see
    :mod:`omipacs.web.jsonbody` for the depth limit."""

    def __post_init__(self) -> None:
        _check_origins(self.cors_origins)
        if self.trusted_proxies < 1:
            raise ConfigurationError("http.trusted_proxies: at least 1")
        if self.public_url:
            _check_public_url(self.public_url)


_SEGMENT = re.compile(r"^[A-Za-z0-9._~\-]+$")


def clean_url_path(path: str) -> bool:
    """True for ``""`` or ``/a/b``: no empty, ``.`` or ``..`` segment, nothing escaped."""
    if not path:
        return True
    if not path.startswith("/"):
        return False
    segments = path[1:].split("/")
    return all(_SEGMENT.match(s) and s not in (".", "..") for s in segments)


def _check_public_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urllib.parse.urlsplit(""), False
    if (
        not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not clean_url_path(parts.path.rstrip("/"))
    ):
        raise ConfigurationError(
            f"http.public_url: {url!r} is not a URL such as "
            '"https://pacs.example.org/archive" (http or https, host, optional clean path)'
        )


_ORIGIN = re.compile(r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")


def _check_origins(origins: tuple[str, ...]) -> None:
    """Refuse a ``cors_origins`` entry no browser could send, or ``*`` among others.

    An origin is ``scheme://host[:port]`` exactly as a browser sends it: no path and no
    trailing slash.
    """
    if "*" in origins and len(origins) > 1:
        raise ConfigurationError('http.cors_origins: "*" allows any origin; list it alone')
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ConfigurationError(
                f"http.cors_origins: {origin!r} is not an origin such as "
                '"https://viewer.example.org" (scheme, host and optional port; no path)'
            )


@dataclass(frozen=True)
class RetrieveSettings:
    """Decoding stored pixels (``/rendered``, thumbnails, transcoding)."""

    max_concurrent_decodes: int = 2
    """Frames decoded (and rendered) at once by the whole server (every HTTP worker and
    DIMSE process of ``omipacs serve`` shares these slots): with ``max_frame_bytes`` this
    bounds the memory pixel work can take, whatever clients ask for."""
    decode_wait_seconds: float = 20.0
    """How long a request waits for a decode slot before a 503."""
    decode_memory_mib: int = 384
    """Memory the decodes in flight may take together, server-wide: each reserves its
    estimated peak (``omipacs.dicom.pixels.decode_cost``: about two frames for JPEG-LS,
    five for an 8-bit JPEG 2000 frame) and waits while the budget is spent, so the
    codec a client picks cannot multiply what ``max_concurrent_decodes`` allows. A
    frame costing more than the whole budget is decoded alone."""


@dataclass(frozen=True)
class BurnedInAllow:
    """Instances of a SOP class (and, if given, a manufacturer) whose pixels are known to
    carry no burned-in text, published without BurnedInAnnotation NO."""

    sop_class_uid: str
    manufacturer: str = ""
    """Compared case-insensitively with Manufacturer (0008,0070); empty: any."""


@dataclass(frozen=True)
class DeidSettings:
    """De-identification on ingest."""

    enabled: bool = True
    key_file: Path | None = None
    """File holding the archive-wide secret (hex or raw); never stored in the index."""
    key_env: str = "OMIPACS_DEID_KEY"
    """Environment variable that may hold the secret instead of a file."""
    identity_db: Path | None = None
    """SQLite file of the keyed-hash to client-ID map (default storage/identity.sqlite),
    used when ``identity_url`` is empty: the single-machine install."""
    identity_url: str = ""
    """Database URL of the identity map (``postgresql+psycopg://…/identity``): one
    database, never the research index, shared by every ingesting worker on every
    machine (docs/deployment.md)."""
    burned_in_allow: tuple[BurnedInAllow, ...] = ()
    """Classes (US, SC, photographs, ...) that may be published without BurnedInAnnotation
    NO, by SOP class and manufacturer: only for equipment known not to burn text in."""
    oldest_age: int = 89
    """Ages above this (given, or computed from the birth date) are published as one year
    more, ``090Y`` by default, as the HIPAA Safe Harbor method aggregates them."""
    clinical_fields: tuple[str, ...] = (
        "Classification", "ReferralSource", "NeedleSpecimenType", "LocalisationType",
        "TreatmentProcedure", "DiseaseExtent", "LymphNode", "RecommendedAction",
        "EpisodeReason", "ScreeningCentre",
    )
    """Clinical (NBSS) fields kept although not modelled, after the free-text and date
    checks; every other unmodelled field is dropped (names of GPs, radiographers, places)."""
    quarantine_retention_days: float = 30.0
    """Quarantined originals are identifiable: deleted this long after they were held."""
    spool_max_age_seconds: float = 900.0
    """Spool files older than this are left over from a failed ingest and are deleted."""
    residue_sweep_seconds: float = 300.0
    """How often ``omipacs serve`` sweeps the spool and purges expired quarantine."""


@dataclass(frozen=True)
class OidcSettings:
    """An OpenID Connect issuer whose JWTs are accepted as bearer tokens."""

    issuer: str = ""
    """Empty: no single sign-on."""
    audience: str = ""
    jwks_url: str = ""
    claim: str = "email"
    """The claim naming the user: matched with the user's email or OIDC subject."""
    authorization_url: str = ""
    """The issuer's authorization endpoint: with ``client_id``, the dashboard's login
    page offers single sign-on (an ID token returned to ``/ui/login/oidc``)."""
    client_id: str = ""
    """The dashboard's client ID at the issuer (ID tokens carry it as their audience,
    so ``audience`` is set to it too)."""


MAX_AUTH_CACHE_SECONDS = 10.0
"""The longest ``[auth] cache_seconds`` allowed."""


@dataclass(frozen=True)
class AuthSettings:
    """Who may use the archive over HTTP (see docs/access.md)."""

    mode: str = "none"
    """``token``: every request needs ``Authorization: Bearer``; ``none``: a single-user
    local install (the demo), refused on a non-loopback address."""
    cache_seconds: float = 2.0
    """How long a resolved token is reused by one process: a revocation, a suspension or
    a disabled user takes effect in every process within this time (at most
    :data:`MAX_AUTH_CACHE_SECONDS`, so that it is always a matter of seconds)."""
    oidc: OidcSettings = field(default_factory=OidcSettings)

    def __post_init__(self) -> None:
        if self.mode not in ("token", "none"):
            raise ConfigurationError(f"auth.mode: expected token or none, got {self.mode!r}")
        if not 0 <= self.cache_seconds <= MAX_AUTH_CACHE_SECONDS:
            raise ConfigurationError(
                f"auth.cache_seconds: expected 0 to {MAX_AUTH_CACHE_SECONDS:g} seconds (how long "
                f"a revoked token or a suspended licence may still work), got {self.cache_seconds}"
            )
        if self.oidc.issuer and not (self.oidc.audience and self.oidc.jwks_url):
            raise ConfigurationError("auth.oidc: issuer needs audience and jwks_url")


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail of access decisions and data access."""

    enabled: bool = True
    """Record every access decision and data access (the default, and what a licensed
    archive needs). ``false`` leaves no trail at all, not even of the local user: it
    exists to measure what the trail costs (``tests/benchmarks/bench_access.py``) and
    is warned about at every start."""
    file: Path | None = None
    """JSON-lines copy of every event (default <storage.root>/audit/audit.jsonl)."""
    batch_seconds: float = 0.5
    """Events are written to the index in batches at most this far apart."""
    syslog: str = ""
    """Also send each event as a DICOM Audit Message (PS3.15 A.5) to this syslog
    collector: ``udp://host:514`` or ``tcp://host:6514`` (empty: no)."""


@dataclass(frozen=True)
class UiSettings:
    """The web dashboard under ``/ui/``."""

    ohif_url: str = ""
    """Where "open in OHIF" goes: a URL with ``{study}`` (the Study Instance UID) and
    optionally ``{licence}`` (the licence the researcher is reading through, empty for
    the whole archive) and ``{dicomweb}`` (that root's DICOMweb URL, URL-encoded), e.g.
    ``"https://viewer.example.org/viewer?StudyInstanceUIDs={study}"``. Empty: no link."""

    def __post_init__(self) -> None:
        if self.ohif_url and (
            not self.ohif_url.startswith(("http://", "https://", "/"))
            or "{study}" not in self.ohif_url
        ):
            raise ConfigurationError(
                "ui.ohif_url: an http(s) URL or a path containing {study}, e.g. "
                '"https://viewer.example.org/viewer?StudyInstanceUIDs={study}"'
            )


@dataclass(frozen=True)
class ReleaseSettings:
    """Releases of a licence's data to a folder or bucket (docs/releases.md)."""

    options: dict[str, Any] = field(default_factory=dict, hash=False)
    """``[release.options]``: keyword arguments for the destination's fsspec filesystem
    (e.g. ``endpoint_url`` for an S3-compatible store); ``--storage-option k=v`` adds to
    them. Credentials come from the usual places (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,
    instance roles)."""
    workers: int = 4
    """Parallel transfers of one ``omipacs release create`` or ``release worker``."""
    max_bytes_per_second: int = 0
    """Cap on one process's transfer rate (0: none), to leave the uplink to others."""
    batch_files: int = 64
    """Most files per batch, the unit of work (and of the journal) a worker takes."""
    queue: str = ""
    """``procrastinate``: with a PostgreSQL index, release batches go through the task
    queue so ``omipacs release worker`` processes on any machine share one export;
    "" (default) copies in the process that runs ``release create``."""
    allowed_roots: tuple[str, ...] = ()
    """Folders a release may be written under (and their subfolders). Empty (default):
    ``omipacs release create`` may name any folder its user can write, a request over
    HTTP none (buckets only). Never inside the archive's own storage root."""


@dataclass(frozen=True)
class Settings:
    """All settings, as one frozen value."""

    storage: StorageSettings = field(default_factory=StorageSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    dimse: DimseSettings = field(default_factory=DimseSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    retrieve: RetrieveSettings = field(default_factory=RetrieveSettings)
    deid: DeidSettings = field(default_factory=DeidSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL (SQLite under the storage root by default)."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.storage.root / 'index.sqlite'}"

    def with_root(self, root: Path) -> Settings:
        """A copy whose storage root (and so default index) is ``root``."""
        return dataclasses.replace(self, storage=dataclasses.replace(self.storage, root=root))


def _convert(value: Any, hint: Any, where: str, base: Path) -> Any:
    """Coerce a TOML or environment value to the annotated type, or explain why not."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(value, args[0], where, base)
    if hint is Path:
        # $VARIABLES first: a secret store's directory ($CREDENTIALS_DIRECTORY) is absolute.
        p = Path(os.path.expandvars(str(value))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigurationError(f"{where}: expected true or false, got {value!r}")
    if hint is int or hint is float:
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ConfigurationError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigurationError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigurationError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, item, f"{where}[{i}]", base) for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigurationError(f"{where}: expected a table, got {value!r}")
        return _build(hint, value, where, base)  # type: ignore[arg-type]
    raise ConfigurationError(f"{where}: unsupported setting type {hint!r}")


def _build(cls: type[Any], table: dict[str, Any], where: str, base: Path) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kwargs = {
        k: _convert(v, hints[k], f"{where}.{k}" if where else k, base) for k, v in table.items()
    }
    return cls(**kwargs)


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``OMIPACS_HTTP_PORT=9000`` becomes ``{"http": {"port": "9000"}}``."""
    sections = {f.name for f in dataclasses.fields(Settings)}
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            out.setdefault(section, {})[key] = value
    return out


def load(path: Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or ``./config.toml`` if it exists) plus the environment."""
    environ = os.environ if environ is None else environ
    if path is None:
        env_path = environ.get("OMIPACS_CONFIG")
        path = Path(env_path) if env_path else Path("config.toml")
        if not path.exists():
            path = None
    table: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigurationError(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {path}: {exc}") from None
        base = path.resolve().parent
    for section, values in _env_overrides(environ).items():
        if section == "deid" and "key" in values:
            # OMIPACS_DEID_KEY is the secret itself, read by the key loader, not a setting.
            values.pop("key")
        if values:
            table.setdefault(section, {}).update(values)
    settings: Settings = _build(Settings, table, "", base)
    if path is None and not settings.storage.root.is_absolute():
        settings = settings.with_root((base / settings.storage.root).resolve())
    return settings
