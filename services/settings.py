"""Settings from `agentledger.toml`, then `AGENTLEDGER_*` environment variables, then flags.

Validated once at start; an invalid value is an error that names the setting the way the user
wrote it (the TOML key or the environment variable), never a crash deep inside a service.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from events.core.keyring import Keyring, KeyringError
from events.reports import Policy
from events.watchdog.classes import ClassError, ClassRules, table
from services.dispatcher.policy import TemplateError, check_session_file
from services.runtime import credentials

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveF = Annotated[float, msgspec.Meta(gt=0)]
ENV_PREFIX = "AGENTLEDGER_"
SECRETS = ("admin_token", "gateway_keys", "keyring", "calendar_token", "alertmanager_token")  # never in a repr, a log line or an answer
HASHED = "sha256:"


class SettingsError(Exception):
    """A setting is missing, malformed or out of range; the message names it."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    home: str = ".agentledger"
    nats_url: str | None = None
    nats_host: str = "127.0.0.1"
    nats_port: Port = 4222
    nats_conf: str | None = None
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    # gateway worker processes on http_port (SO_REUSEPORT); 0: half the cores, at least one (the
    # other half is for nats-server, the projector and the upstreams on the same machine)
    gateway_workers: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    # always: nats-server fsyncs every write before it acks it; interval: it flushes on its own
    # timer (two minutes by default) and an OS crash can lose acked writes (README "Durability")
    durability: Literal["always", "interval"] = "always"
    duplicate_window_s: PositiveF = 600.0
    usage_max_age_days: PositiveF = 90.0
    runs_max_age_days: PositiveF = 30.0
    projector_name: str = "projector"
    batch_size: Positive = 5000
    batch_ms: Positive = 50
    snapshot_interval_s: PositiveF = 5.0
    query_row_limit: Positive = 10_000
    query_timeout_s: PositiveF = 10.0
    # ad-hoc SQL: concurrent worker processes, and each one's DuckDB memory_limit and threads
    sql_slots: Positive = 4
    sql_memory_mb: Annotated[int, msgspec.Meta(ge=64)] = 256
    sql_threads: Positive = 1
    request_timeout_s: PositiveF = 5.0
    max_body_bytes: Positive = 1024 * 1024
    max_events_per_request: Positive = 1000
    # an idle keep-alive connection, or one whose request headers (or body) stop arriving, is
    # closed after this long, so half-sent requests cannot hold connections open forever
    http_idle_timeout_s: PositiveF = 15.0
    log_level: str = "INFO"
    # dispatcher: how agents are woken (off: not at all), the wake command template with
    # {agent_id} {task_id} {message} {session_id}, or the webhook; agent runs and 429 cooldowns
    dispatch_mode: Literal["off", "command", "nats", "webhook"] = "off"
    dispatch_command: str | None = None
    dispatch_webhook_url: str | None = None
    dispatch_interval_s: PositiveF = 5.0
    agent_timeout_s: PositiveF = 630.0
    max_monitor_timeouts: Positive = 3
    agent_cooldown_s: PositiveF = 300.0
    # the agent runtime's session file ({agent_id}, ~ expanded), read on each agent timeout to
    # tell a stuck or compacting session from a slow one; unset: timeouts are only counted
    dispatch_session_file: str | None = None
    # watchdog (events.watchdog): pass interval, who hears as COO, the root-cause analyst agent
    # (unset: nobody is woken), per-class overrides of the agent classes (a TOML table, or JSON
    # in AGENTLEDGER_AGENT_CLASSES: {"dev": {"recovery_s": 3600}}), the cron wakes' time zone
    watchdog_interval_s: PositiveF = 30.0
    watchdog_coo: str = "coo"
    watchdog_analyst: str | None = None
    agent_classes: str | dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    heartbeat_tz: str = "Asia/Shanghai"
    heartbeat_wakes: bool = True  # the watchdog wakes agents on their class's cron
    # proxy: health probe of every enabled backend (GET <base>/models)
    probe_interval_s: PositiveF = 30.0
    probe_timeout_s: PositiveF = 5.0
    # notifier (inside `up` unless notifier_enabled is false): retries of a failing delivery
    # (backoff base x 2^(n-1) up to max, jittered down by up to report_jitter of itself), when
    # to give up, and each send's timeout. alert_routes: severity -> target names,
    # `critical=owner;warning=coo` (info is recorded, never sent); alertmanager_token: the
    # Bearer token Alertmanager's http_config sends (unset: POST /api/alertmanager is open)
    notifier_enabled: bool = True
    report_timeout_s: PositiveF = 10.0
    report_backoff_base_s: PositiveF = 1.0
    report_backoff_max_s: PositiveF = 300.0
    report_jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    report_max_attempts: Positive = 12
    report_max_age_s: PositiveF = 86_400.0
    alert_routes: str = "critical=owner;warning=coo"
    alertmanager_token: str | None = None
    # gateway secrets (SECRETS): the admin API is disabled without admin_token; gateway_keys are
    # the proxy's client keys, comma-separated, kept only as `sha256:<hex>` once loaded (a value
    # already of that form is taken as a hash); the keyring is `k1=<base64 32 bytes>,...` given
    # inline or in keyring_file (the file wins for `keys rotate`, which rewrites it)
    admin_token: str | None = None
    # who the CLI is on NATS: a credentials file name in <home>/credentials (admin, reader, ...)
    identity: str = "admin"
    # reading HTTP routes: open to anyone on a loopback gateway, or a token for every route
    read_auth: Literal["loopback", "token"] = "loopback"
    # snapshots readable by the owner's group too (analysts in that group); else owner only
    snapshot_group_read: bool = False
    # calendar (the scheduler runs when calendar_url is set): the backend of the seed's API (this
    # gateway's own URL when agentledger is the calendar), the claw this host is for (default:
    # the host name), how often to sync, look for due slots and ping; the zone of `HH:MM` times
    calendar_url: str | None = None
    claw_identifier: str | None = None
    calendar_sync_interval_s: PositiveF = 300.0
    calendar_check_interval_s: PositiveF = 30.0
    calendar_heartbeat_interval_s: PositiveF = 60.0
    calendar_timezone: str = "UTC"
    # Bearer token for the calendar backend (another agentledger: its admin token)
    calendar_token: str | None = None
    gateway_keys: str | list[str] = ""
    keyring: str | None = None
    keyring_file: str | None = None

    def __post_init__(self) -> None:
        raw = self.gateway_keys.split(",") if isinstance(self.gateway_keys, str) else self.gateway_keys
        self.gateway_keys = [_hashed(k.strip()) for k in raw if k.strip()]
        if self.admin_token == "":
            self.admin_token = None
        if self.dispatch_mode == "command" and not self.dispatch_command:
            raise ValueError("dispatch_command is required when dispatch_mode is command - at `$.dispatch_command`")
        if self.dispatch_mode == "webhook" and not self.dispatch_webhook_url:
            raise ValueError("dispatch_webhook_url is required when dispatch_mode is webhook - at `$.dispatch_webhook_url`")
        if self.calendar_url == "":
            self.calendar_url = None
        if not self.claw_identifier:
            self.claw_identifier = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:128] or "claw"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", self.claw_identifier):
            raise ValueError("claw_identifier must match [A-Za-z0-9_-]{1,128} - at `$.claw_identifier`")
        try:
            ZoneInfo(self.calendar_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.calendar_timezone!r} - at `$.calendar_timezone`") from None
        if self.alertmanager_token == "":
            self.alertmanager_token = None
        self.routes()  # a malformed alert_routes fails at start, naming the setting
        if isinstance(self.agent_classes, str):
            try:
                self.agent_classes = msgspec.json.decode(self.agent_classes or "{}", type=dict[str, dict[str, Any]])
            except msgspec.ValidationError as exc:
                raise ValueError(f"agent_classes is not a JSON object of objects: {exc} - at `$.agent_classes`") from None
        try:
            self.classes()
        except ClassError as exc:
            raise ValueError(f"{exc} - at `$.agent_classes`") from None
        try:
            ZoneInfo(self.heartbeat_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.heartbeat_tz!r} - at `$.heartbeat_tz`") from None
        if self.dispatch_session_file == "":
            self.dispatch_session_file = None
        if self.dispatch_session_file is not None:
            try:
                check_session_file(self.dispatch_session_file)
            except TemplateError as exc:
                raise ValueError(f"{exc} - at `$.dispatch_session_file`") from None

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{n}={v!r}' for n, v in self.__rich_repr__())})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:
        for name in _FIELDS:
            value = getattr(self, name)
            yield name, ("<set>" if value else value) if name in SECRETS else value

    def classes(self) -> dict[str, ClassRules]:
        """The agent classes in force: the seed's defaults with `agent_classes` applied."""
        return table(self.agent_classes)  # type: ignore[arg-type]

    def gateway_key_ok(self, key: str) -> bool:
        """Constant-time check of a client key against the configured hashes (the key is always
        hashed here: a client presenting a stored hash does not pass)."""
        digest = HASHED + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return any([hmac.compare_digest(digest, h) for h in self.gateway_keys])  # noqa: C419 - compare all

    def alertmanager_token_ok(self, token: str) -> bool:
        """True when no token is configured (the route is open, as Alertmanager's default)."""
        if not self.alertmanager_token:
            return True
        return hmac.compare_digest(token.encode(), self.alertmanager_token.encode())

    def routes(self) -> dict[str, list[str]]:
        """`alert_routes` as severity -> target names."""
        out: dict[str, list[str]] = {}
        for part in filter(None, (p.strip() for p in self.alert_routes.split(";"))):
            severity, sep, names = part.partition("=")
            targets = [n.strip() for n in names.split(",") if n.strip()]
            if not sep or severity.strip() not in ("critical", "warning", "info") or not all(
                    re.fullmatch(r"[A-Za-z0-9_-]{1,128}", n) for n in targets):
                raise ValueError(f"alert_routes: {part!r} is not <critical|warning|info>=<target>[,<target>...]"
                                 " - at `$.alert_routes`")
            out[severity.strip()] = targets
        return out

    def report_policy(self) -> Policy:
        return Policy(base_s=self.report_backoff_base_s, max_s=self.report_backoff_max_s,
                      jitter=self.report_jitter, max_attempts=self.report_max_attempts,
                      max_age_s=self.report_max_age_s)

    def admin_token_ok(self, token: str) -> bool:
        """False when no admin token is configured: the admin API is disabled, never open."""
        if not self.admin_token:
            return False
        # surrogateescape: aiohttp hands undecodable header bytes over as lone surrogates
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.admin_token.encode())

    def load_keyring(self) -> Keyring | None:
        """The keyring from keyring_file or keyring (None when neither is set)."""
        if self.keyring_file:
            path = Path(self.keyring_file).expanduser()
            try:
                value, where = path.read_text().strip(), f"keyring_file {path}"
            except OSError as exc:
                raise SettingsError(f"keyring_file {path}: {exc.strerror}") from None
        elif self.keyring:
            value, where = self.keyring, "keyring (AGENTLEDGER_KEYRING)"
        else:
            return None
        try:
            return Keyring.from_env_value(value)
        except KeyringError as exc:
            raise SettingsError(f"invalid setting {where}: {exc}") from None

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def projections_dir(self) -> Path:
        return self.home_path / "projections"

    @property
    def nats_store(self) -> Path:
        return self.home_path / "nats"

    @property
    def url(self) -> str:
        """The NATS URL services connect to: the external one, or the embedded server's."""
        return self.nats_url or f"nats://{self.nats_host}:{self.nats_port}"

    def url_as(self, name: str) -> str:
        """The NATS URL carrying the credentials of `name` (admin, a service, reader, agent:<id>)
        from the home, when the home has them and the URL carries none of its own."""
        return credentials.with_user(self.url, credentials.load(self.home_path, name))

    @property
    def workers(self) -> int:
        """How many gateway processes `serve gateway` runs (`gateway_workers`, 0: chosen here)."""
        return self.gateway_workers or max(1, (os.cpu_count() or 1) // 2)

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    def stream_options(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "duplicate_window_s": self.duplicate_window_s,
            "max_age_days": {"usage": self.usage_max_age_days, "runs": self.runs_max_age_days},
        }


_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}


def _hashed(key: str) -> str:
    if key.startswith(HASHED):
        return key
    return HASHED + hashlib.sha256(key.encode()).hexdigest()


def load(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Merge file < environment < explicit overrides (None overrides are ignored)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = Path(config or env.get(f"{ENV_PREFIX}CONFIG", "agentledger.toml"))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: invalid TOML: {exc}") from exc
        for key, value in data.get("agentledger", data).items():
            values[key] = value
            sources[key] = f"{path}: {key}"
    elif config is not None:
        raise SettingsError(f"config file {path} does not exist")
    for var in env:
        if var.startswith(ENV_PREFIX) and var != f"{ENV_PREFIX}CONFIG" and var[len(ENV_PREFIX):].lower() not in _FIELDS:
            raise SettingsError(
                f"unknown environment variable {var}; known: "
                + ", ".join(f"{ENV_PREFIX}{n.upper()}" for n in _FIELDS)
            )
    for name in _FIELDS:
        var = f"{ENV_PREFIX}{name.upper()}"
        if var in env:
            values[name] = env[var]
            sources[name] = var
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
            sources[name] = f"--{name.replace('_', '-')}"
    for key in values:
        if key not in _FIELDS:
            raise SettingsError(f"unknown setting {sources.get(key, key)!r}; known: {', '.join(_FIELDS)}")
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        name = text.rsplit("$.", 1)[-1].rstrip("`") if "$." in text else ""
        where = sources.get(name, name or "settings")
        raise SettingsError(f"invalid setting {where}: {text.split(' - at ')[0]}") from None
