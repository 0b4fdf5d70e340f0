"""`Client`: start-up (manager, else LKG file, else defaults), the config in force, callbacks
and subscriptions, and the background thread that checks every MQTT update, re-reads over
REST when an update cannot be applied directly, applies new configs and reports each version
on `config/applied/{service}/{instance}`.

Everything that changes the config in force happens on that one thread, one thing at a time,
so versions apply in order and a callback never runs twice at once. paho-mqtt's own network
thread only hands messages over through a queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import enum
import inspect
import logging
import os
import queue
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from . import wire
from .errors import ClosedError, NoConfigError, SettingError
from .lkg import LkgError, LkgFile, LkgLayer, LkgLayers, LkgMissing, key_from_token
from .mqtt import BrokerUrl, make_client
from .rest import LayerRead, Manager, ManagerError
from .schema import EnvLookup, HeldSecrets, Rejected, Resolved, ServiceSchema, has_placeholder

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("dials_client")
security = logging.getLogger("dials_client.security")
"""Refused updates are logged here as warnings."""

DEFAULT_START_TIMEOUT = 2.0

Callback = Callable[[M, M], "Awaitable[None] | None"]


class Origin(str, enum.Enum):
    """Where the config in force came from."""

    MANAGER = "manager"
    LKG = "lkg"
    DEFAULTS = "defaults"


@dataclass(frozen=True)
class ConfigInfo:
    """About the config in force."""

    version: int
    """The manager's version (0 for defaults)."""
    epoch: uuid.UUID | None
    origin: Origin
    overrides: tuple[str, ...]
    """The keys the environment overrides."""
    pending_restart: tuple[str, ...] = ()
    """`x-restart-required` keys whose value changed since this process started: the service
    applies them only after a restart."""


@dataclass(frozen=True)
class Update(Generic[M]):
    """One applied config, as a subscription hands it out."""

    version: int
    config: M


@dataclass
class _Report:
    version: int
    status: wire.Status
    error: str | None
    overrides: list[str]


class Subscription(Generic[M]):
    """Each config applied after it was made (latest wins if the reader is slow): `get()` and
    `for update in sub` block a thread, `async for update in sub` waits in asyncio; both end
    when the client closes."""

    def __init__(self, client: Client[M]) -> None:
        self._client = client
        self._cond = threading.Condition()
        self._latest: Update[M] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        try:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
        except RuntimeError:
            pass

    def _push(self, update: Update[M] | None) -> None:
        with self._cond:
            if update is None:
                self._closed = True
            else:
                self._latest = update
            self._cond.notify_all()
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._event.set)

    def _take(self) -> Update[M] | None:
        latest, self._latest = self._latest, None
        return latest

    def get(self, timeout: float | None = None) -> Update[M]:
        """The next applied config; `TimeoutError` after `timeout` seconds, `ClosedError` once
        the client is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                latest = self._take()
                if latest is not None:
                    return latest
                if self._closed:
                    raise ClosedError("the dials client is closed")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no new config")
                self._cond.wait(left)

    def __iter__(self) -> Iterator[Update[M]]:
        return self

    def __next__(self) -> Update[M]:
        try:
            return self.get()
        except ClosedError:
            raise StopIteration from None

    def __aiter__(self) -> AsyncIterator[Update[M]]:
        return self

    async def __anext__(self) -> Update[M]:
        if self._event is None:
            raise RuntimeError("iterate a subscription made inside the running event loop")
        while True:
            with self._cond:
                latest = self._take()
                if latest is not None:
                    return latest
                if self._closed:
                    raise StopAsyncIteration
            self._event.clear()
            await self._event.wait()

    def close(self) -> None:
        """Stops receiving."""
        self._client._unsubscribe(self)
        self._push(None)


@dataclass
class _Callback(Generic[M]):
    fn: Callable[[M, M], Any]
    loop: asyncio.AbstractEventLoop | None


@dataclass
class _Settings:
    server: str
    token: str
    instance: str
    keys: list[Ed25519PublicKey]
    broker: BrokerUrl | None
    mqtt_prefix: str
    mqtt_ca_file: str | None
    lkg: LkgFile | None
    allow_defaults: bool
    register_schema: bool
    start_timeout: float
    request_timeout: float
    callback_timeout: float
    poll_interval: float | None
    env: EnvLookup
    extra: dict[str, Any] = field(default_factory=dict)


class Client(Generic[M]):
    """Typed, live, signed configuration for one service from a dials config manager.

    Start with `Client.start(Model, "service", server=…, token=…, mqtt=…, public_keys=[…],
    lkg_path=…)` (or `await Client.astart(...)`), read with `get()`, react with `on_change()`
    or `subscribe()`, stop with `close()`.
    """

    # ----------------------------------------------------------------------------------------
    # Start-up

    @classmethod
    def start(
        cls,
        model: type[M],
        service: str,
        *,
        server: str,
        token: str,
        mqtt: str | None = None,
        public_keys: str | list[str] | tuple[str, ...] = (),
        lkg_path: str | os.PathLike[str] | None = None,
        lkg_key: bytes | None = None,
        instance: str | None = None,
        allow_defaults: bool = False,
        register_schema: bool = True,
        mqtt_prefix: str = "",
        mqtt_ca_file: str | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        request_timeout: float = 10.0,
        callback_timeout: float = 30.0,
        poll_interval: float | None = None,
        env: Mapping[str, str] | EnvLookup | None = None,
    ) -> Client[M]:
        """Reads the config (manager within `start_timeout`, else the LKG file, else the
        model's defaults if `allow_defaults`), then keeps it current in the background.
        Never waits on MQTT. Raises `SettingError` or `NoConfigError`."""
        try:
            wire.check_service(service)
        except ValueError as e:
            raise SettingError("service", str(e)) from None
        if not server:
            raise SettingError(
                "server", "the manager's URL is not set (e.g. http://127.0.0.1:8081)"
            )
        if not server.startswith("http://"):
            raise SettingError(
                "server",
                f"{server!r}: only http:// is supported; put the manager behind a local TLS "
                "proxy or reach it over a trusted network",
            )
        token = (token or "").strip()
        if not token:
            raise SettingError("token", "no token is set")
        inst = instance if instance is not None else socket.gethostname()
        try:
            wire.check_instance(inst)
        except ValueError as e:
            raise SettingError("instance", str(e)) from None
        if isinstance(public_keys, str):
            public_keys = [k for k in public_keys.replace(",", " ").split() if k]
        try:
            keys = [wire.parse_public_key(k) for k in public_keys]
        except ValueError as e:
            raise SettingError("public_keys", str(e)) from None
        broker = None
        if mqtt:
            if not keys:
                raise SettingError(
                    "public_keys",
                    "MQTT updates are verified against a pinned public key: pass the manager's "
                    "key (GET /api/v1/keys)",
                )
            try:
                broker = BrokerUrl.parse(mqtt)
            except ValueError as e:
                raise SettingError("mqtt", str(e)) from None
        if env is None:
            lookup: EnvLookup = os.environ.get
        elif isinstance(env, Mapping):
            vars_ = dict(env)
            lookup = vars_.get
        else:
            lookup = env
        lkg = None
        if lkg_path is not None:
            lkg = LkgFile(lkg_path, lkg_key if lkg_key is not None else key_from_token(token))
        settings = _Settings(
            server=server,
            token=token,
            instance=inst,
            keys=keys,
            broker=broker,
            mqtt_prefix=mqtt_prefix,
            mqtt_ca_file=mqtt_ca_file,
            lkg=lkg,
            allow_defaults=allow_defaults,
            register_schema=register_schema,
            start_timeout=start_timeout,
            request_timeout=request_timeout,
            callback_timeout=callback_timeout,
            poll_interval=poll_interval
            if poll_interval is not None
            else (None if broker else 30.0),
            env=lookup,
        )
        client = cls(model, service, settings)
        try:
            client._initial()
        except BaseException:
            client._manager.close()
            raise
        client._run()
        return client

    @classmethod
    async def astart(cls, model: type[M], service: str, **kwargs: Any) -> Client[M]:
        """`start` without blocking the event loop."""
        return await asyncio.to_thread(lambda: cls.start(model, service, **kwargs))

    def __init__(self, model: type[M], service: str, settings: _Settings) -> None:
        self.service = service
        self.instance = settings.instance
        self._s = settings
        self._schema: ServiceSchema[M] = ServiceSchema(model)
        self._manager = Manager(settings.server, service, settings.token, settings.instance)
        self._lock = threading.Lock()
        self._callbacks: list[_Callback[M]] = []
        self._subscriptions: list[Subscription[M]] = []
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._config: M
        self._start_config: M
        self._info: ConfigInfo
        self._epoch: uuid.UUID | None = None
        self._seen = 0
        self._held = HeldSecrets()
        self._last_report: _Report | None = None
        self._report_pending = False
        self._connected = False
        self._mqtt: paho.Client | None = None
        # Updates not acknowledged yet (mid, qos), and the report awaiting its PUBACK.
        self._held_acks: list[tuple[int, int]] = []
        self._report_mid: int | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._manager_ok = False
        self._topics = wire.Topics(settings.mqtt_prefix)
        self._updated_topic = self._topics.updated(service)
        self._applied_topic = self._topics.applied(service, settings.instance)
        # The layers merged with the service's document: `global` (only when the schema takes
        # keys from it) and this instance's override, each with the version held (0: none).
        self._global_topic = self._topics.global_()
        self._override_topic = self._topics.override(service, settings.instance)
        self._service_doc: Any = {}
        self._global: Any | None = None
        self._global_version = 0
        self._instance_doc: Any | None = None
        self._instance_version = 0
        self._instance_held = HeldSecrets()
        self._applied_layers: dict[str, str] = {}

    def __repr__(self) -> str:
        # No config values: they may hold secrets.
        return (
            f"Client(service={self.service!r}, instance={self.instance!r}, "
            f"version={self._info.version}, origin={self._info.origin.value})"
        )

    def _report(
        self, version: int, status: wire.Status, error: str | None, overrides: list[str]
    ) -> None:
        self._last_report = _Report(version, status, error, overrides)
        self._report_pending = True

    def _initial(self) -> None:
        s, schema, service = self._s, self._schema, self.service
        overrides = schema.active_overrides(s.env)
        manager_reason = ""
        rejected: tuple[int, uuid.UUID, str] | None = None
        # 1. The manager, within the start timeout.
        deadline = time.monotonic() + s.start_timeout
        try:
            if s.register_schema:
                try:
                    self._manager.register_schema(schema.json, s.start_timeout)
                    log.debug("schema registered", extra={"service": service})
                except ManagerError as e:
                    log.warning(
                        "%s: the manager did not take this service's schema: %s", service, e
                    )
            read = self._manager.read_layers(max(0.05, deadline - time.monotonic()))
        except ManagerError as e:
            manager_reason = f"the manager at {self._manager.base} gave no config: {e}"
            log.warning("%s: %s; trying the last-known-good file", service, manager_reason)
        else:
            response = read.service
            self._take_layers(read, same_epoch=False)
            self._service_doc = response.config
            try:
                resolved = self._resolve(response.config)
            except Rejected as e:
                log.error(
                    "%s: the manager's config version %d does not fit this service: %s",
                    service,
                    response.version,
                    e,
                )
                manager_reason = (
                    f"the manager's config version {response.version} does not fit: {e}"
                )
                rejected = (response.version, response.epoch, str(e))
            else:
                self._warn_masked(resolved.masked)
                self._set_initial(
                    resolved.value,
                    response.version,
                    response.epoch,
                    Origin.MANAGER,
                    resolved.overrides,
                )
                self._report(response.version, "applied", None, overrides)
                self._epoch, self._seen = response.epoch, response.version
                self._held = HeldSecrets.from_response(response.config, response.secrets)
                self._manager_ok = True
                self._write_lkg(response.version, response.epoch, response.config)
                return
        self._manager_ok = rejected is not None
        if rejected is not None:
            self._seen, self._epoch = rejected[0], rejected[1]
            self._report(rejected[0], "rejected", rejected[2], overrides)

        # 2. The last-known-good file.
        if s.lkg is None:
            lkg_reason = "no last-known-good file is configured (lkg_path)"
        else:
            try:
                contents = s.lkg.load(service)
            except LkgMissing as e:
                lkg_reason = str(e)
            except (LkgError, OSError) as e:
                lkg_reason = f"the last-known-good file {s.lkg.path} is refused: {e}"
                log.error("%s: %s", service, lkg_reason)
            else:
                if contents.layers is not None:
                    if contents.layers.global_ is not None and schema.takes_global:
                        self._global = contents.layers.global_.config
                        self._global_version = contents.layers.global_.version
                    if contents.layers.instance is not None:
                        self._instance_doc = contents.layers.instance.config
                        self._instance_version = contents.layers.instance.version
                self._service_doc = contents.config
                try:
                    resolved = self._resolve(contents.config)
                except Rejected as e:
                    lkg_reason = (
                        f"the last-known-good file {s.lkg.path} (version {contents.version}) "
                        f"does not fit: {e}"
                    )
                    log.error("%s: %s", service, lkg_reason)
                else:
                    log.info(
                        "%s: starting from the last-known-good file %s (version %d)",
                        service,
                        s.lkg.path,
                        contents.version,
                    )
                    self._set_initial(
                        resolved.value,
                        contents.version,
                        contents.epoch,
                        Origin.LKG,
                        resolved.overrides,
                    )
                    if rejected is None:
                        self._report(contents.version, "applied", None, overrides)
                        self._epoch = contents.epoch
                    self._seen = max(self._seen, contents.version)
                    return

        # 3. The defaults, only if allowed.
        if not s.allow_defaults:
            raise NoConfigError(service, manager_reason, lkg_reason)
        try:
            resolved = schema.resolve({}, s.env)
        except Rejected as e:
            raise SettingError(
                "allow_defaults",
                f"the model's defaults, with the environment's overrides, do not make a valid "
                f"config: {e}",
            ) from None
        log.warning("%s: starting from the defaults: %s; %s", service, manager_reason, lkg_reason)
        self._set_initial(resolved.value, 0, self._epoch, Origin.DEFAULTS, resolved.overrides)
        if rejected is None:
            self._report(0, "applied", None, overrides)

    def _resolve(self, service_doc: Any) -> Resolved[M]:
        """Merges the service's document with the layers held, then the environment, and
        validates; records which keys came from `global` or the override. Or `Rejected`."""
        merged, layers = self._schema.merge(
            self._global if self._schema.takes_global else None,
            service_doc,
            self._instance_doc,
        )
        resolved = self._schema.resolve(merged, self._s.env)
        self._applied_layers = layers
        return resolved

    def _take_layers(self, read: LayerRead, same_epoch: bool) -> bool:
        """Takes the layers of a REST read that are newer than those held (any, from another
        epoch); answers whether one changed."""
        changed = False
        g = read.global_
        if (
            g is not None
            and self._schema.takes_global
            and (not same_epoch or g.version > self._global_version)
        ):
            self._global_version, self._global = g.version, g.config
            changed = True
        i = read.instance
        if i is not None and (not same_epoch or i.version > self._instance_version):
            if i.config is not None and has_placeholder(i.config):
                log.warning(
                    "%s: the manager answered this instance's override with secret "
                    "placeholders; not applied",
                    self.service,
                )
            else:
                self._instance_held = (
                    HeldSecrets()
                    if i.config is None
                    else HeldSecrets.from_response(i.config, i.secrets)
                )
                self._instance_version, self._instance_doc = i.version, i.config
                changed = True
        return changed

    def _lkg_layers(self) -> LkgLayers | None:
        """The layers to keep in the LKG file, secret values left out."""
        if self._global is None and self._instance_doc is None:
            return None
        without = self._schema.without_secrets
        return LkgLayers(
            global_=None
            if self._global is None
            else LkgLayer(self._global_version, without(self._global)),
            instance=None
            if self._instance_doc is None
            else LkgLayer(self._instance_version, without(self._instance_doc)),
        )

    def _set_initial(
        self, value: M, version: int, epoch: uuid.UUID | None, origin: Origin, overrides: list[str]
    ) -> None:
        self._config = value
        self._start_config = value
        self._info = ConfigInfo(version, epoch, origin, tuple(overrides))
        log.info(
            "%s: dials config in force: version %d from %s (instance %s, overrides %s)",
            self.service,
            version,
            origin.value,
            self.instance,
            overrides,
        )

    def _warn_masked(self, masked: list[str]) -> None:
        if masked:
            log.warning(
                "%s: the manager masked these secrets: read them with this service's own token: %s",
                self.service,
                masked,
            )

    def _write_lkg(self, version: int, epoch: uuid.UUID | None, config: Any) -> None:
        if self._s.lkg is None:
            return
        try:
            self._s.lkg.store(
                self.service,
                version,
                epoch,
                self._schema.hash,
                self._schema.without_secrets(config),
                self._lkg_layers(),
            )
            log.debug("%s: last-known-good file written (version %d)", self.service, version)
        except OSError as e:
            log.warning(
                "%s: cannot write the last-known-good file %s: %s",
                self.service,
                self._s.lkg.path,
                e,
            )

    # ----------------------------------------------------------------------------------------
    # The public surface

    def get(self) -> M:
        """The config in force (a model instance; treat it as read-only)."""
        return self._config

    @property
    def info(self) -> ConfigInfo:
        """Version, epoch, origin, overridden keys and keys waiting for a restart."""
        return self._info

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema registered with the manager."""
        return self._schema.json

    def on_change(
        self,
        callback: Callable[[M, M], Any],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Callable[[], None]:
        """Calls `callback(old, new)` before each new config comes into force. An `async def`
        callback runs on `loop` (default: the loop running when `on_change` is called). If a
        callback raises, the previous config stays in force and the version is reported
        `failed`. Returns a function that removes the callback."""
        if inspect.iscoroutinefunction(callback) and loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise ValueError(
                    "an async callback needs an event loop: register it from inside the loop "
                    "or pass loop="
                ) from None
        entry = _Callback(callback, loop)
        with self._lock:
            self._callbacks.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._callbacks:
                    self._callbacks.remove(entry)

        return remove

    def subscribe(self) -> Subscription[M]:
        """A `Subscription` to each config applied from now on."""
        sub = Subscription(self)
        with self._lock:
            if self._closed:
                sub._push(None)
            else:
                self._subscriptions.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription[M]) -> None:
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

    def refresh(self, timeout: float | None = None) -> None:
        """Reads the config over REST now and applies it if newer; raises `ManagerError` if
        the manager cannot be read."""
        if self._closed:
            raise ClosedError("the dials client is closed")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(("refresh", done))
        done.result(timeout if timeout is not None else self._s.request_timeout + 5)

    def close(self, timeout: float = 5.0) -> None:
        """Stops the background thread and the broker connection; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subs, self._subscriptions = self._subscriptions, []
        self._queue.put(("stop", None))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for sub in subs:
            sub._push(None)

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Client[M]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client[M]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------------------------
    # The background thread

    def _run(self) -> None:
        if self._s.broker is not None:
            b = self._s.broker
            client_id = f"dials-{self.service}-{self.instance}-{secrets.randbelow(1 << 24):06x}"
            m = make_client(b, client_id, self._s.mqtt_ca_file)
            m.on_connect = self._on_connect
            m.on_disconnect = self._on_disconnect
            m.on_message = self._on_message
            m.on_publish = self._on_publish
            m.manual_ack_set(True)
            m.connect_async(b.host, b.port, keepalive=15)
            m.loop_start()
            self._mqtt = m
            log.debug("connecting to the MQTT broker %s in the background", b.display())
        self._thread = threading.Thread(
            target=self._loop, name=f"dials-{self.service}", daemon=True
        )
        self._thread.start()

    # paho's thread: hand everything to ours.
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            self._queue.put(("down", str(reason)))
            return
        client.subscribe(self._updated_topic, qos=1)
        client.subscribe(self._override_topic, qos=1)
        # One publish on `global` reaches every service that takes keys from it; the others
        # never hear it.
        if self._schema.takes_global:
            client.subscribe(self._global_topic, qos=1)
        self._queue.put(("connected", None))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._queue.put(("down", str(reason)))

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        kind = {
            self._updated_topic: "service",
            self._override_topic: "instance",
            self._global_topic: "global" if self._schema.takes_global else "",
        }.get(msg.topic, "")
        self._queue.put(("envelope", (kind, bytes(msg.payload), msg.mid, msg.qos)))

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        self._queue.put(("puback", mid))

    def _loop(self) -> None:
        read_wanted = False
        read_at = 0.0
        waiters: list[concurrent.futures.Future[None]] = []
        backoff = _Backoff(0.1, 30.0)
        next_poll = (time.monotonic() + self._s.poll_interval) if self._s.poll_interval else None
        warned_down = False
        while True:
            deadlines = [d for d in (read_at if read_wanted else None, next_poll) if d is not None]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            try:
                kind, arg = self._queue.get(timeout=wait)
            except queue.Empty:
                kind, arg = "tick", None
            if kind == "stop":
                break
            if kind == "connected":
                log.info(
                    "%s: connected to the MQTT broker %s",
                    self.service,
                    self._s.broker.display() if self._s.broker else "",
                )
                self._connected, warned_down = True, False
                self._report_pending = self._last_report is not None
                self._held_acks, self._report_mid = [], None
                read_wanted, read_at = True, time.monotonic()  # what was missed comes from REST
            elif kind == "down":
                if self._connected or not warned_down:
                    log.warning(
                        "%s: MQTT broker unreachable (%s); retrying in the background",
                        self.service,
                        arg,
                    )
                    warned_down = True
                self._connected = False
            elif kind == "envelope":
                layer, payload, mid, qos = arg
                if layer == "service":
                    reread = self._on_envelope(payload)
                elif layer in ("global", "instance"):
                    reread = self._on_layer_envelope(layer, payload)
                else:
                    reread = False
                if reread and not read_wanted:
                    read_wanted, read_at = True, time.monotonic()
                if qos > 0:
                    self._held_acks.append((mid, qos))
            elif kind == "puback":
                if arg == self._report_mid:
                    self._report_mid = None
            elif kind == "refresh":
                waiters.append(arg)
                read_wanted, read_at = True, time.monotonic()
            now = time.monotonic()
            if next_poll is not None and now >= next_poll:
                read_wanted, read_at = True, now
                next_poll = now + (self._s.poll_interval or 30.0)
            if read_wanted and now >= read_at:
                try:
                    response = self._manager.read_layers(self._s.request_timeout)
                except ManagerError as e:
                    (log.warning if self._manager_ok else log.debug)(
                        "%s: cannot read the config: %s; retrying", self.service, e
                    )
                    self._manager_ok = False
                    read_at = time.monotonic() + backoff.next()
                    for w in waiters:
                        w.set_exception(e)
                    waiters = []
                else:
                    self._manager_ok = True
                    backoff.reset()
                    read_wanted = False
                    self._on_rest(response)
                    for w in waiters:
                        w.set_result(None)
                    waiters = []
            self._publish_report()
            self._release_acks()
        for w in waiters:
            w.set_exception(ClosedError("the dials client is closed"))
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
        self._manager.close()

    def _release_acks(self) -> None:
        """Acknowledges updates in the order they came: all of them, except the newest while
        a report is in flight — that acknowledgement follows the report's PUBACK at once.

        A broker that sends with Nagle's algorithm (Mosquitto's default) holds the next update
        while its PUBACK of our report is unacknowledged at the TCP level, and if we had
        nothing to send right after that PUBACK, our kernel would delay that ACK by up to
        40 ms. Holding back one update's acknowledgement until then gives it a ride."""
        if not self._connected or self._mqtt is None:
            return
        keep = 1 if self._report_mid is not None and self._held_acks else 0
        release = self._held_acks[: len(self._held_acks) - keep]
        self._held_acks = self._held_acks[len(release) :]
        for mid, qos in release:
            self._mqtt.ack(mid, qos)

    def _publish_report(self) -> None:
        r = self._last_report
        if not (self._report_pending and self._connected and self._mqtt is not None and r):
            return
        if self._report_mid is not None:
            return  # one report in flight at a time; the newest goes when its PUBACK comes
        payload = wire.applied_report(
            service=self.service,
            instance=self.instance,
            version=r.version,
            status=r.status,
            error=r.error,
            at=wire.now_rfc3339(),
            schema_hash=self._schema.hash,
            overrides=r.overrides,
            layers=self._applied_layers,
            global_version=self._global_version if self._schema.takes_global else None,
            # 0 while no override is merged (none yet, or removed).
            override_version=self._instance_version if self._instance_doc is not None else 0,
        )
        info = self._mqtt.publish(self._applied_topic, payload, qos=1, retain=True)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            self._report_pending = False
            self._report_mid = info.mid
        else:
            log.warning("%s: cannot report the applied status (%s)", self.service, info.rc)

    def _on_rest(self, read: LayerRead) -> None:
        """A config read over REST: applied if any layer of it is newer, or from another
        epoch."""
        response = read.service
        same_epoch = self._epoch == response.epoch
        layer_changed = self._take_layers(read, same_epoch)
        if same_epoch and response.version <= self._seen and layer_changed:
            # Only another layer is newer: merge it with the service's document in force.
            self._apply(self._seen, response.epoch, self._service_doc)
            return
        if same_epoch and response.version <= self._seen:
            log.debug("%s: the manager has nothing newer than %d", self.service, self._seen)
            return
        if not same_epoch and self._epoch is not None:
            security.warning(
                "%s: the manager's database has a new epoch (%s, was %s); following the manager",
                self.service,
                response.epoch,
                self._epoch,
            )
        if has_placeholder(response.config):
            log.warning(
                "%s: the manager answered with secret placeholders; not applied", self.service
            )
            return
        self._held = HeldSecrets.from_response(response.config, response.secrets)
        self._apply(response.version, response.epoch, response.config)

    def _on_envelope(self, payload: bytes) -> bool:
        """Checks an MQTT update and applies it; answers whether to re-read over REST."""
        v = wire.judge_update(
            payload,
            service=self.service,
            epoch=self._epoch,
            version=self._seen,
            trusted=self._s.keys,
            now=dt.datetime.now(dt.timezone.utc),
        )
        if v.action == "ignore":
            if v.reason == "deleted":
                log.warning(
                    "%s: the manager deleted this service; the config in force stays", self.service
                )
            elif v.reason == "same_version":
                log.debug("%s: already have version %d", self.service, self._seen)
            elif v.reason == "old_version":
                security.warning(
                    "%s: ignored an MQTT update older than the config in force "
                    "(version %s, holding %d)",
                    self.service,
                    v.detail,
                    self._seen,
                )
            elif v.reason == "other_service":
                security.warning(
                    "%s: ignored an MQTT update for another service (%s)", self.service, v.detail
                )
            else:
                security.warning(
                    "%s: ignored an MQTT update that does not verify (%s: %s)",
                    self.service,
                    v.reason,
                    v.detail,
                )
            return False
        if v.action == "reread":
            if v.reason == "unknown_epoch":
                security.warning(
                    "%s: MQTT update from an unknown epoch %s (known %s); re-reading over REST",
                    self.service,
                    v.detail,
                    self._epoch,
                )
            elif v.reason == "stale":
                log.info(
                    "%s: MQTT update is stale (issued more than 5 minutes ago); "
                    "re-reading over REST",
                    self.service,
                )
            else:
                log.info("%s: first MQTT update; reading the config over REST", self.service)
            return True
        env = v.envelope
        assert env is not None
        config = env.config
        if has_placeholder(config):
            filled = self._held.fill(config)
            if filled is None:
                log.debug(
                    "%s: update %d carries secrets this client does not hold; reading it over REST",
                    self.service,
                    env.version,
                )
                return True
            config = filled
        self._apply(env.version, env.epoch, config)
        return False

    def _on_layer_envelope(self, layer: str, payload: bytes) -> bool:
        """Checks an MQTT update of `global` or of this instance's override, exactly as the
        service's own, and merges it with the service's document in force. Answers whether
        to re-read over REST."""
        name = "global" if layer == "global" else f"{self.service}/{self.instance}"
        held = self._global_version if layer == "global" else self._instance_version
        v = wire.judge_update(
            payload,
            service=name,
            epoch=self._epoch,
            version=held,
            trusted=self._s.keys,
            now=dt.datetime.now(dt.timezone.utc),
        )
        if v.action == "ignore":
            if v.reason == "deleted":
                if layer == "global":
                    had, self._global = self._global, None
                else:
                    had, self._instance_doc = self._instance_doc, None
                    self._instance_held = HeldSecrets()
                if had is not None and self._epoch is not None:
                    log.info("%s: the layer %s was removed; merging without it", self.service, name)
                    self._apply(self._seen, self._epoch, self._service_doc)
                return False
            if v.reason in ("same_version", "old_version"):
                log.debug("%s: already have version %d of %s", self.service, held, name)
                return False
            if v.reason == "other_service":
                security.warning(
                    "%s: ignored an MQTT update of %s that names another document (%s)",
                    self.service,
                    name,
                    v.detail,
                )
                return False
            security.warning(
                "%s: ignored an MQTT update of %s that does not verify (%s: %s)",
                self.service,
                name,
                v.reason,
                v.detail,
            )
            # A key not trusted yet is learnt through the service's own updates; a re-read
            # brings the layer meanwhile.
            return v.reason == "unknown_key"
        if v.action == "reread":
            return True
        env = v.envelope
        assert env is not None
        config = env.config
        if layer == "instance" and has_placeholder(config):
            filled = self._instance_held.fill(config)
            if filled is None:
                return True
            config = filled
        if layer == "global":
            self._global_version, self._global = env.version, config
        else:
            self._instance_version, self._instance_doc = env.version, config
        self._apply(self._seen, env.epoch, self._service_doc)
        return False

    def _apply(self, version: int, epoch: uuid.UUID, config: Any) -> None:
        """Merges the service's document `config` with the other layers held, resolves, runs
        the callbacks, swaps the config in, reports, writes the LKG file."""
        s = self._s
        self._epoch, self._seen = epoch, version
        self._service_doc = config
        overrides = self._schema.active_overrides(s.env)
        try:
            resolved = self._resolve(config)
        except Rejected as e:
            log.error("%s: rejected config version %d: %s", self.service, version, e)
            self._report(version, "rejected", str(e), overrides)
            return
        self._warn_masked(resolved.masked)
        old, new = self._config, resolved.value
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                self._call(cb, old, new)
            except Exception as e:
                reason = f"a change callback refused it: {e or type(e).__name__}"
                log.error("%s: config version %d not applied: %s", self.service, version, reason)
                self._report(version, "failed", reason, overrides)
                return
        pending = self._schema.changed_restart_keys(
            self._start_config.model_dump(mode="json"), new.model_dump(mode="json")
        )
        newly = [k for k in pending if k not in self._info.pending_restart]
        if newly:
            log.warning(
                "%s: config version %d changes %s, which take effect only after a "
                "restart (x-restart-required)",
                self.service,
                version,
                ", ".join(newly),
            )
        self._info = ConfigInfo(
            version, epoch, Origin.MANAGER, tuple(resolved.overrides), tuple(pending)
        )
        self._config = new
        log.info("%s: applied config version %d", self.service, version)
        self._report(version, "applied", None, resolved.overrides)
        self._publish_report()
        with self._lock:
            subs = list(self._subscriptions)
        for sub in subs:
            sub._push(Update(version, new))
        self._write_lkg(version, epoch, config)

    def _call(self, cb: _Callback[M], old: M, new: M) -> None:
        result = cb.fn(old, new)
        if inspect.isawaitable(result):
            if cb.loop is None:
                raise RuntimeError("an async callback without an event loop")

            async def run() -> None:
                await result

            fut = asyncio.run_coroutine_threadsafe(run(), cb.loop)
            try:
                fut.result(self._s.callback_timeout)
            except concurrent.futures.TimeoutError:
                fut.cancel()
                raise TimeoutError(
                    f"it did not finish within {self._s.callback_timeout} s"
                ) from None


class _Backoff:
    """Exponential backoff with jitter."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.current = first, cap, first

    def next(self) -> float:
        delay = self.current
        self.current = min(self.cap, self.current * 2)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.current = self.first
