"""Configuration (SPEC §2): TOML read with tomllib, validated into typed dataclasses.

Every problem becomes a ConfigError that names the key and the fix; the CLI prints it on one
line and exits 2.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError

DEFAULT_PATH = "/etc/syncd/config.toml"

CLOUDS = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


@dataclass(frozen=True)
class Credential:
    """Exactly one of secret / certificate. ``source`` says where it came from (never the value)."""

    kind: str  # "secret" | "certificate"
    source: str  # e.g. "client_secret_file /run/...", "$SYNCD_CLIENT_SECRET", "client_secret"
    secret: str | None = field(default=None, repr=False)
    certificate_pem: bytes | None = field(default=None, repr=False)
    certificate_file: str | None = None


@dataclass(frozen=True)
class EntraConfig:
    tenant_id: str
    client_id: str
    service_principal_id: str
    credential: Credential
    cloud: str = "global"
    authority_host: str = CLOUDS["global"][0]
    graph_endpoint: str = CLOUDS["global"][1]
    ca_bundle: str | None = None
    client_secret_expires: date | None = None


@dataclass(frozen=True)
class SyncConfig:
    interval_minutes: int = 40
    jitter_seconds: int = 0
    scope: str = "assigned"
    group_members: str = "direct"
    full_sync_every_hours: float = 24
    deactivation_threshold: int = 500
    cycle_timeout_minutes: float = 30
    skip_out_of_scope_deactivations: bool = False


@dataclass(frozen=True)
class MappingConfig:
    email: str = "userPrincipalName"
    admin_group_aliases: tuple[str, ...] = ("Split_Administrators",)
    max_group_name_length: int = 24


@dataclass(frozen=True)
class ScimApp:
    """One ``[[scim]]`` application (SPEC §7). ``token`` is the bearer token, never shown."""

    name: str
    base_url: str
    token_file: str
    deactivation_threshold: int
    token: str | None = field(default=None, repr=False, compare=False)
    token_expires: date | None = None
    ca_bundle: str | None = None
    concurrency: int = 4
    enabled: bool = True

    def read_token(self) -> str:
        """The token, read from ``token_file`` now if the configuration was loaded without it."""
        return self.token if self.token is not None else _scim_token(self.name, self.token_file, [])


@dataclass(frozen=True)
class Config:
    entra: EntraConfig
    sync: SyncConfig = SyncConfig()
    mapping: MappingConfig = MappingConfig()
    store_path: str = "/var/lib/syncd/syncd.db"
    retention_days: int = 400
    log_level: str = "info"
    log_format: str = "text"
    metrics_textfile: str | None = None
    path: str | None = None  # where it was read from
    warnings: tuple[str, ...] = ()
    scim: tuple[ScimApp, ...] = ()  # SPEC §7: the SCIM applications, in the file's order


# --------------------------------------------------------------------------- schema

_Check = Any  # (key, value) -> converted value, raising ConfigError


def _type(expected: type | tuple[type, ...], label: str):
    def check(key: str, value: Any) -> Any:
        # bool is an int in Python: refuse it where a number is wanted
        if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
            raise ConfigError(f"{key}: expected {label}, got a boolean")
        if not isinstance(value, expected):
            raise ConfigError(f"{key}: expected {label}, got {type(value).__name__} {value!r}")
        return value

    return check


def _string(key: str, value: Any) -> str:
    value = _type(str, "a string")(key, value)
    if not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    return value


def _choice(*choices: str):
    def check(key: str, value: Any) -> str:
        value = _type(str, "a string")(key, value)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        return value

    return check


def _int_min(minimum: int):
    def check(key: str, value: Any) -> int:
        value = _type(int, "a whole number")(key, value)
        if value < minimum:
            raise ConfigError(f"{key}: must be {minimum} or more, got {value}")
        return value

    return check


def _number_min(minimum: float, strictly: bool = False):
    def check(key: str, value: Any) -> float:
        value = _type((int, float), "a number")(key, value)
        if value < minimum or (strictly and value == minimum):
            raise ConfigError(f"{key}: must be {'more than' if strictly else 'at least'} {minimum}, got {value}")
        return float(value)

    return check


def _https_url(key: str, value: Any) -> str:
    value = _string(key, value)
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ConfigError(f"{key}: {value!r} is not an https:// URL (TLS is required)")
    return value.rstrip("/")


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{key}: expected a list of non-empty strings")
    return tuple(value)


def _date(key: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a date like 2027-11-28, got {value!r}")


SCHEMA: dict[str, dict[str, _Check]] = {
    "entra": {
        "tenant_id": _string,
        "client_id": _string,
        "service_principal_id": _string,
        "client_secret_file": _string,
        "client_certificate_file": _string,
        "client_secret": _string,
        "cloud": _choice(*CLOUDS),
        "authority_host": _https_url,
        "graph_endpoint": _https_url,
        "ca_bundle": _string,
        "client_secret_expires": _date,
    },
    "sync": {
        "interval_minutes": _int_min(1),
        "jitter_seconds": _int_min(0),
        "scope": _choice("assigned", "all"),
        "group_members": _choice("direct", "transitive"),
        "full_sync_every_hours": _number_min(0, strictly=True),
        "deactivation_threshold": _int_min(0),
        "cycle_timeout_minutes": _number_min(0, strictly=True),
        "skip_out_of_scope_deactivations": _type(bool, "true or false"),
    },
    "mapping": {
        "email": _choice("userPrincipalName", "originalUserPrincipalName", "mail"),
        "admin_group_aliases": _str_list,
        "max_group_name_length": _int_min(1),
    },
    "store": {"path": _string},
    "audit": {"retention_days": _int_min(1)},
    "log": {"level": _choice("debug", "info", "warning", "error"), "format": _choice("text", "json")},
    "metrics": {"textfile": _string},
}


def resolve_path(cli_path: str | None) -> str:
    return cli_path or os.environ.get("SYNCD_CONFIG") or DEFAULT_PATH


def load(cli_path: str | None = None, *, read_credential: bool = True) -> Config:
    """Read and validate the configuration.

    ``read_credential=False`` checks that one credential is configured without reading it:
    commands that never talk to Graph (status, users, report, ...) keep working when the
    secret is only present while the service runs (systemd ``LoadCredential=``).
    """
    path = resolve_path(cli_path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} not found: pass --config PATH, set $SYNCD_CONFIG, "
            f"or copy config.example.toml to {DEFAULT_PATH}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    return parse(data, base_dir=Path(path).resolve().parent, path=path, read_credential=read_credential)


def parse(
    data: dict[str, Any], base_dir: Path | None = None, path: str | None = None, *, read_credential: bool = True
) -> Config:
    """Validate a decoded TOML document. Relative file paths resolve against ``base_dir``
    (a credential file's against ``$CREDENTIALS_DIRECTORY`` first: ``credential_path``).

    Every problem is collected and raised together, one line each, so a file is fixed in
    one go. ``read_credential=False`` (commands that never talk to Graph) neither reads the
    credential nor checks ``entra.ca_bundle``.
    """
    errors: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    scim_tables = data.get("scim", [])
    data = {k: v for k, v in data.items() if k != "scim"}
    for section, content in data.items():
        if section not in SCHEMA:
            errors.append(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
            continue
        if not isinstance(content, dict):
            errors.append(f"{section}: expected a [{section}] table")
            continue
        values[section] = {}
        for key, value in content.items():
            full = f"{section}.{key}"
            if key not in SCHEMA[section]:
                errors.append(f"{full}: unknown key (known in [{section}]: {', '.join(SCHEMA[section])})")
                continue
            try:
                values[section][key] = SCHEMA[section][key](full, value)
            except ConfigError as exc:
                errors.extend(exc.lines)

    def rel(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() or base_dir is None else base_dir / q)

    entra = values.get("entra", {})
    for key in ("tenant_id", "client_id", "service_principal_id"):
        if key not in entra and f"entra.{key}" not in " ".join(errors):
            errors.append(f"entra.{key}: missing (required)")
    warnings: list[str] = []
    credential = None
    try:
        credential = _credential(entra, base_dir, warnings, read_credential)
    except ConfigError as exc:
        errors.extend(exc.lines)
    cloud = entra.get("cloud", "global")
    ca_bundle = entra.get("ca_bundle")
    if ca_bundle is not None:
        ca_bundle = rel(ca_bundle)
        if read_credential and not os.access(ca_bundle, os.R_OK):
            why = "does not exist" if not os.path.exists(ca_bundle) else "cannot be read by this user"
            errors.append(f"entra.ca_bundle: {ca_bundle} {why}")
    scim: tuple[ScimApp, ...] = ()
    try:
        threshold = values.get("sync", {}).get("deactivation_threshold", SyncConfig.deactivation_threshold)
        scim = _scim_apps(scim_tables, base_dir, rel, warnings, read_credential, threshold)
    except ConfigError as exc:
        errors.extend(exc.lines)
    if errors or credential is None:
        raise ConfigError(*errors)
    entra_cfg = EntraConfig(
        tenant_id=entra["tenant_id"].strip(),
        client_id=entra["client_id"].strip(),
        service_principal_id=entra["service_principal_id"].strip(),
        credential=credential,
        cloud=cloud,
        authority_host=entra.get("authority_host", CLOUDS[cloud][0]),
        graph_endpoint=entra.get("graph_endpoint", CLOUDS[cloud][1]),
        ca_bundle=ca_bundle,
        client_secret_expires=entra.get("client_secret_expires"),
    )
    sync_cfg = SyncConfig(**values.get("sync", {}))
    mapping_cfg = MappingConfig(**values.get("mapping", {}))
    # the keys given, as Config's fields; a key not given takes the dataclass's default
    given = {
        field_name: value
        for (section, key), field_name in _TOP_LEVEL.items()
        if (value := values.get(section, {}).get(key)) is not None
    }
    for field_name in ("store_path", "metrics_textfile"):
        if field_name in given:
            given[field_name] = rel(given[field_name])
    return Config(
        entra=entra_cfg, sync=sync_cfg, mapping=mapping_cfg, path=path, warnings=tuple(warnings), scim=scim, **given
    )


# the keys of the small sections, as Config's own fields
_TOP_LEVEL = {
    ("store", "path"): "store_path",
    ("audit", "retention_days"): "retention_days",
    ("log", "level"): "log_level",
    ("log", "format"): "log_format",
    ("metrics", "textfile"): "metrics_textfile",
}


CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"


def credential_path(value: str, base_dir: Path | None = None) -> str:
    """Where a secret file named in the configuration is (``client_secret_file``, and any
    other key naming a credential file).

    An absolute path is itself. A relative one names a systemd credential: inside a unit
    with ``LoadCredential=`` (``$CREDENTIALS_DIRECTORY`` set) it is that directory's file,
    so the daemon, the timer's unit and a template instance share one configuration; outside
    a unit it is the file beside the configuration, the very file ``LoadCredential=`` loads
    from (``client_secret_file = "client-secret"`` -> /etc/syncd/client-secret), so checks
    run by hand read what the service will read.
    """
    q = Path(value).expanduser()
    if q.is_absolute():
        return str(q)
    credentials = os.environ.get(CREDENTIALS_DIRECTORY)
    if credentials:
        return str(Path(credentials) / q)
    return str(q if base_dir is None else base_dir / q)


def _credential_hint(key: str, value: str, path: str) -> str:
    """Why a credential file is missing, when the layout explains it."""
    credentials = os.environ.get(CREDENTIALS_DIRECTORY)
    if not Path(value).expanduser().is_absolute() and credentials:
        return (
            f"{key}: {Path(value).name} is not among the unit's credentials ({credentials}): "
            f"add LoadCredential={Path(value).name}:/etc/syncd/{Path(value).name} to the unit"
        )
    if path.startswith("/run/credentials/"):
        return (
            f"{key}: {path} does not exist: systemd creates it only while its unit runs; "
            f'name the credential instead ({key.split(".")[-1]} = "{Path(path).name}"), which resolves '
            "in $CREDENTIALS_DIRECTORY inside a unit and beside the configuration file outside one"
        )
    return f"{key}: {path} does not exist"


def _credential(entra: dict[str, Any], base_dir: Path | None, warnings: list[str], read: bool = True) -> Credential:
    given = [k for k in ("client_secret_file", "client_certificate_file", "client_secret") if k in entra]
    env_secret = os.environ.get("SYNCD_CLIENT_SECRET")
    if len(given) > 1:
        raise ConfigError(f"entra.{given[1]}: only one credential may be set, but {' and '.join('entra.' + g for g in given)} are")
    if not given:
        if env_secret:
            return Credential("secret", "$SYNCD_CLIENT_SECRET", secret=_strip_newline(env_secret))
        raise ConfigError(
            "entra.client_secret_file: missing credential: set one of entra.client_secret_file, "
            "entra.client_certificate_file, entra.client_secret, or $SYNCD_CLIENT_SECRET"
        )
    key = given[0]
    if not read and key != "client_secret":
        kind = "certificate" if key == "client_certificate_file" else "secret"
        path = credential_path(entra[key], base_dir)
        return Credential(kind, f"entra.{key} {path}", certificate_file=path if kind == "certificate" else None)
    if key == "client_secret":
        warnings.append(
            "entra.client_secret holds the secret in the configuration file: prefer "
            "entra.client_secret_file (systemd LoadCredential=)"
        )
        return Credential("secret", "entra.client_secret", secret=entra[key])
    path = credential_path(entra[key], base_dir)
    content = read_credential_file(f"entra.{key}", entra[key], path, warnings)
    if key == "client_secret_file":
        secret = _strip_newline(content.decode("utf-8", errors="replace"))
        if not secret:
            raise ConfigError(f"entra.client_secret_file: {path} is empty")
        return Credential("secret", f"entra.client_secret_file {path}", secret=secret)
    if b"PRIVATE KEY-----" not in content or b"CERTIFICATE-----" not in content:
        raise ConfigError(
            f"entra.client_certificate_file: {path} must be a PEM holding the RSA private key "
            "and the certificate"
        )
    return Credential("certificate", f"entra.client_certificate_file {path}", certificate_pem=content, certificate_file=path)


def read_credential_file(key: str, value: str, path: str, warnings: list[str]) -> bytes:
    """The bytes of the credential file ``key = value`` resolved to ``path`` (``credential_path``);
    a missing or unreadable one is a ConfigError naming the key, a loose mode a warning."""
    try:
        st = os.stat(path)
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(_credential_hint(key, value, path)) from None
    except OSError as exc:
        raise ConfigError(f"{key}: {path} cannot be read ({exc.strerror}): check its owner and mode") from None
    if st.st_mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH):
        mode = oct(stat.S_IMODE(st.st_mode))[2:]
        warnings.append(f"{key}: {path} is readable by other users or its group (mode {mode}): chmod 600 it")
    return content


def _strip_newline(secret: str) -> str:
    if secret.endswith("\n"):
        secret = secret[:-1]
    return secret[:-1] if secret.endswith("\r") else secret


SCIM_SCHEMA: dict[str, _Check] = {
    "name": _string,
    "base_url": _string,
    "token_file": _string,
    "token_expires": _date,
    "ca_bundle": _string,
    "concurrency": _int_min(1),
    "deactivation_threshold": _int_min(0),
    "enabled": _type(bool, "true or false"),
}
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _scim_apps(
    tables: Any, base_dir: Path | None, rel, warnings: list[str], read: bool, default_threshold: int
) -> tuple[ScimApp, ...]:
    """The ``[[scim]]`` tables: each names one SCIM application (SPEC §7)."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("scim: expected [[scim]] tables (an array of tables), one per application")
    apps: list[ScimApp] = []
    for n, table in enumerate(tables):
        where = f"scim[{n}]"
        if "name" not in table:
            raise ConfigError(f"{where}.name: missing (required)")
        name = SCIM_SCHEMA["name"](f"{where}.name", table["name"])
        if not re.fullmatch(r"[a-z0-9-]+", name):
            raise ConfigError(f"{where}.name: {name!r} may hold only a-z, 0-9 and '-'")
        if any(a.name == name for a in apps):
            raise ConfigError(f"{where}.name: {name!r} names two [[scim]] applications: names must be unique")
        where = f"scim.{name}"  # from here on the application's name says which table is wrong
        for key in table:
            if key not in SCIM_SCHEMA:
                raise ConfigError(f"{where}.{key}: unknown key (known in [[scim]]: {', '.join(SCIM_SCHEMA)})")
        for key in ("base_url", "token_file"):
            if key not in table:
                raise ConfigError(f"{where}.{key}: missing (required)")
        v = {k: SCIM_SCHEMA[k](f"{where}.{k}", value) for k, value in table.items()}
        parsed = urlparse(v["base_url"])
        if not parsed.hostname or not (parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in _LOOPBACK)):
            raise ConfigError(
                f"{where}.base_url: {v['base_url']!r} must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost)"
            )
        token_file = credential_path(v["token_file"], base_dir)  # (a systemd credential too)
        ca_bundle = rel(v["ca_bundle"]) if "ca_bundle" in v else None
        if ca_bundle is not None and not os.access(ca_bundle, os.R_OK):
            raise ConfigError(f"{where}.ca_bundle: {ca_bundle} cannot be read")
        optional = {k: v[k] for k in ("token_expires", "concurrency", "enabled") if k in v}  # (else the defaults)
        apps.append(ScimApp(
            name=name,
            base_url=v["base_url"].rstrip("/"),
            token_file=token_file,
            token=_scim_token(name, token_file, warnings) if read else None,
            ca_bundle=ca_bundle,
            deactivation_threshold=v.get("deactivation_threshold", default_threshold),
            **optional,
        ))
    return tuple(apps)


def _scim_token(name: str, path: str, warnings: list[str]) -> str:
    """A SCIM bearer token from its file: the same rules as ``entra.client_secret_file``."""
    token = _strip_newline(read_credential_file(f"scim.{name}.token_file", path, path, warnings).decode("utf-8", errors="replace"))
    if not token:
        raise ConfigError(f"scim.{name}.token_file: {path} is empty")
    return token


def describe(config: Config) -> dict[str, Any]:
    """What the configuration resolved to, for ``check-config --json``: never a secret's value."""
    e = config.entra
    return {
        "path": config.path,
        "entra": {
            "tenant_id": e.tenant_id,
            "client_id": e.client_id,
            "service_principal_id": e.service_principal_id,
            "credential": f"{e.credential.kind} from {e.credential.source}",
            "cloud": e.cloud,
            "authority_host": e.authority_host,
            "graph_endpoint": e.graph_endpoint,
            "ca_bundle": e.ca_bundle,
            "client_secret_expires": e.client_secret_expires.isoformat() if e.client_secret_expires else None,
        },
        "sync": {k: getattr(config.sync, k) for k in config.sync.__dataclass_fields__},
        "mapping": {
            "email": config.mapping.email,
            "admin_group_aliases": list(config.mapping.admin_group_aliases),
            "max_group_name_length": config.mapping.max_group_name_length,
        },
        "store": {"path": config.store_path},
        "audit": {"retention_days": config.retention_days},
        "log": {"level": config.log_level, "format": config.log_format},
        "metrics": {"textfile": config.metrics_textfile},
        "scim": [
            {
                "name": a.name, "base_url": a.base_url, "token": f"from scim.{a.name}.token_file {a.token_file}",
                "token_expires": a.token_expires.isoformat() if a.token_expires else None, "ca_bundle": a.ca_bundle,
                "concurrency": a.concurrency, "deactivation_threshold": a.deactivation_threshold, "enabled": a.enabled,
            }
            for a in config.scim
        ],
        "warnings": list(config.warnings) + placeholder_warnings(config),
    }


# the ids config.example.toml ships with: a configuration still holding one was not filled in
PLACEHOLDER_GUID = "00000000-0000-0000-0000-000000000000"
EXAMPLE_TENANT = "contoso.onmicrosoft.com"
_WHERE = {
    "tenant_id": "the Directory (tenant) ID on the app registration's Overview page",
    "client_id": "the Application (client) ID on the app registration's Overview page",
    "service_principal_id": "the Object ID on the enterprise application's Overview page",
}


def placeholder_warnings(config: Config) -> list[str]:
    """The ids still holding config.example.toml's placeholders (check-config, test-connection)."""
    e = config.entra
    out = []
    for key in ("tenant_id", "client_id", "service_principal_id"):
        value = getattr(e, key)
        if value == PLACEHOLDER_GUID or (key == "tenant_id" and value.lower() == EXAMPLE_TENANT):
            out.append(f"entra.{key} is still the placeholder {value!r} of config.example.toml: set it to {_WHERE[key]}")
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()  # a TOML local date
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    import json

    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def as_toml(config: Config) -> str:
    """What the configuration resolved to, as TOML one could paste back (defaults filled in,
    relative paths resolved, the secret never shown; keys not set are comments)."""
    e = config.entra
    cred = e.credential
    credential: list[tuple[str, Any]]
    if cred.source.startswith("entra.client_secret_file ") or cred.source.startswith("entra.client_certificate_file "):
        key, _, path = cred.source.partition(" ")
        credential = [(key.removeprefix("entra."), path)]
    elif cred.source == "entra.client_secret":
        credential = [("# client_secret", "set in this file (not shown)")]
    else:
        credential = [("# credential", f"the client secret from {cred.source}")]
    sections: dict[str, list[tuple[str, Any]]] = {
        "entra": [
            ("tenant_id", e.tenant_id), ("client_id", e.client_id), ("service_principal_id", e.service_principal_id),
            *credential,
            ("cloud", e.cloud), ("authority_host", e.authority_host), ("graph_endpoint", e.graph_endpoint),
            ("ca_bundle", e.ca_bundle), ("client_secret_expires", e.client_secret_expires),
        ],
        "sync": [(k, getattr(config.sync, k)) for k in config.sync.__dataclass_fields__],
        "mapping": [
            ("email", config.mapping.email), ("admin_group_aliases", list(config.mapping.admin_group_aliases)),
            ("max_group_name_length", config.mapping.max_group_name_length),
        ],
        "store": [("path", config.store_path)],
        "audit": [("retention_days", config.retention_days)],
        "log": [("level", config.log_level), ("format", config.log_format)],
        "metrics": [("textfile", config.metrics_textfile)],
    }
    tables = [(f"[{section}]", items) for section, items in sections.items()]
    for a in config.scim:
        tables.append(("[[scim]]", [
            ("name", a.name), ("base_url", a.base_url), ("token_file", a.token_file), ("token_expires", a.token_expires),
            ("ca_bundle", a.ca_bundle), ("concurrency", a.concurrency),
            ("deactivation_threshold", a.deactivation_threshold), ("enabled", a.enabled),
        ]))
    lines = [f"# configuration {config.path} is valid; as resolved:"]
    for header, items in tables:
        lines.append(f"\n{header}")
        for key, value in items:
            if key.startswith("#"):
                lines.append(f"{key}: {value}")
            elif value is None:
                lines.append(f"# {key}: not set")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
