"""From the service's pydantic model to the schema the manager holds, and from documents to the
typed config: the layers merged (`global` for the `x-global` keys < the service's document <
the instance's override, as `dials_schema::layers` merges them), then the environment
(`x-env`), then validation into the model (whose own defaults fill what the documents lack,
the same defaults the schema carries). Plain functions over values; no I/O except the
injected environment lookup.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .wire import SECRET_MASK

M = TypeVar("M", bound=BaseModel)

EnvLookup = Callable[[str], "str | None"]
"""Looks up an environment variable by name."""

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _simplify(node: Any) -> Any:
    """Pydantic writes `Optional[X]` as `anyOf: [X, {"type": "null"}]` and secrets with
    `format: password`: fold the first into `type: [X, "null"]` where X is one plain type,
    and drop the second, so the manager's catalogue sees one type per key."""
    if isinstance(node, list):
        return [_simplify(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _simplify(v) for k, v in node.items()}
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2:
        nulls = [s for s in any_of if s == {"type": "null"}]
        others = [s for s in any_of if s != {"type": "null"}]
        if len(nulls) == 1 and len(others) == 1 and isinstance(others[0].get("type"), str):
            inner = dict(others[0])
            del out["anyOf"]
            inner_type = inner.pop("type")
            enum = inner.get("enum")
            if isinstance(enum, list) and None not in enum:
                inner["enum"] = [*enum, None]
            out = {**inner, **out, "type": [inner_type, "null"]}
    if out.get("format") == "password":
        del out["format"]
        out.pop("writeOnly", None)
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `model`, as registered with the manager. The `x-`
    annotations come from each field's `json_schema_extra`."""
    schema = _simplify(model.model_json_schema(mode="validation"))
    assert isinstance(schema, dict)
    return {"$schema": DRAFT_2020_12, **schema}


def schema_hash(schema: Any) -> str:
    """Hex SHA-256 of the schema serialized with every object's keys sorted: the hash the
    manager computes."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _pointer(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


@dataclass(frozen=True)
class Setting:
    """A leaf of the schema: its key (JSON Pointer) and annotations."""

    key: str
    tokens: tuple[str, ...]
    type_: str
    nullable: bool
    env: str | None
    secret: bool
    restart_required: bool
    global_: tuple[str, ...] | None = None
    """`x-global`: the tokens of the key of the `global` document this key takes its value
    from (`true` names the key's own pointer)."""


def _tokens(pointer: str) -> tuple[str, ...]:
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def _resolve_ref(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for t in ref[2:].split("/"):
            target = target.get(t.replace("~1", "/").replace("~0", "~"), {})
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve_ref(root, merged)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve_ref(root, {**all_of[0], **rest})
    return node


def settings(schema: dict[str, Any]) -> list[Setting]:
    """Every leaf of `schema` with its annotations; `x-secret` and `x-restart-required` on an
    object apply to everything under it."""
    out: list[Setting] = []

    def walk(node: dict[str, Any], tokens: list[str], secret: bool, restart: bool) -> None:
        node = _resolve_ref(schema, node)
        secret = secret or node.get("x-secret") is True
        restart = restart or node.get("x-restart-required") is True
        types = node.get("type")
        type_list = types if isinstance(types, list) else [types] if isinstance(types, str) else []
        nullable = "null" in type_list
        main = [t for t in type_list if t != "null"]
        props = node.get("properties")
        is_object = isinstance(props, dict) and main in (["object"], [])
        if tokens and not is_object:
            env = node.get("x-env")
            glob = node.get("x-global")
            global_: tuple[str, ...] | None = None
            if glob is True:
                global_ = tuple(tokens)
            elif isinstance(glob, str) and glob.startswith("/"):
                global_ = _tokens(glob)
            out.append(
                Setting(
                    key=_pointer(tokens),
                    tokens=tuple(tokens),
                    type_=main[0] if len(main) == 1 else "any",
                    nullable=nullable,
                    env=env if isinstance(env, str) else None,
                    secret=secret,
                    restart_required=restart,
                    global_=global_,
                )
            )
            return
        if isinstance(props, dict):
            for name, sub in props.items():
                if isinstance(sub, dict):
                    walk(sub, [*tokens, name], secret, restart)

    walk(schema, [], False, False)
    return out


def parse_env(raw: str, type_: str, nullable: bool) -> Any:
    """An environment string as a value of the key's type: JSON if it parses as that type,
    else the string itself."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    fits = {
        "any": True,
        "string": isinstance(parsed, str),
        "boolean": isinstance(parsed, bool),
        "integer": isinstance(parsed, int) and not isinstance(parsed, bool),
        "number": isinstance(parsed, (int, float)) and not isinstance(parsed, bool),
        "array": isinstance(parsed, list),
        "object": isinstance(parsed, dict),
    }.get(type_, False)
    if parsed is None:
        fits = nullable or type_ == "null"
    return parsed if fits else raw


def _lookup(doc: Any, tokens: tuple[str, ...]) -> tuple[bool, Any]:
    for t in tokens:
        if not isinstance(doc, dict) or t not in doc:
            return False, None
        doc = doc[t]
    return True, doc


def _set(doc: dict[str, Any], tokens: tuple[str, ...], value: Any) -> None:
    for t in tokens[:-1]:
        nxt = doc.get(t)
        if not isinstance(nxt, dict):
            nxt = {}
            doc[t] = nxt
        doc = nxt
    doc[tokens[-1]] = value


def _remove(doc: Any, tokens: tuple[str, ...]) -> None:
    for t in tokens[:-1]:
        if not isinstance(doc, dict):
            return
        doc = doc.get(t)
    if isinstance(doc, dict):
        doc.pop(tokens[-1], None)


def _lookup_leaf(doc: Any, tokens: tuple[str, ...]) -> tuple[bool, Any]:
    """The value at `tokens` (as the Rust `Document::get`: a token below a non-object finds
    nothing)."""
    if not tokens:
        return False, None
    node = doc
    for t in tokens:
        if not isinstance(node, dict) or t not in node:
            return False, None
        node = node[t]
    return True, node


def _is_branch(value: Any) -> bool:
    """A non-empty object that is not a secret placeholder (`{"$secret": n}`)."""
    if not isinstance(value, dict) or not value:
        return False
    v = value.get("$secret")
    is_placeholder = len(value) == 1 and isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return not is_placeholder


def _leaves(doc: dict[str, Any], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, value in doc.items():
        if _is_branch(value):
            out.extend(_leaves(value, (*prefix, name)))
        else:
            out.append((*prefix, name))
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    """Merges `over` into `base`: objects key by key, anything else replaces."""
    for key, value in over.items():
        slot = base.get(key)
        if isinstance(slot, dict) and isinstance(value, dict):
            deep_merge(slot, value)
        else:
            base[key] = copy.deepcopy(value)


def _strip_masks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_masks(v) for k, v in value.items() if v != SECRET_MASK}
    return value


def has_placeholder(value: Any) -> bool:
    """Whether `value` holds a `{"$secret": …}` placeholder anywhere."""
    if isinstance(value, dict):
        return "$secret" in value or any(has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(has_placeholder(v) for v in value)
    return False


def _strip_placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_placeholders(v)
            for k, v in value.items()
            if not (isinstance(v, dict) and "$secret" in v)
        }
    if isinstance(value, list):
        return [_strip_placeholders(v) for v in value]
    return value


@dataclass
class Resolved(Generic[M]):
    """A document turned into the typed config."""

    value: M
    overrides: list[str]
    """The keys the environment overrode, as JSON Pointers."""
    masked: list[str] = field(default_factory=list)
    """Secret keys whose value is the manager's mask (read with a token not the service's)."""


class Rejected(Exception):
    """The document does not fit the model; the message is the reason to report."""


class ServiceSchema(Generic[M]):
    """The service's model, its schema and the settings read from it."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.json = model_schema(model)
        self.hash = schema_hash(self.json)
        self.settings = settings(self.json)
        self.env_keys = [s for s in self.settings if s.env]
        self.secret_keys = [s for s in self.settings if s.secret]
        self.restart_keys = [s for s in self.settings if s.restart_required]
        self.global_keys = [s for s in self.settings if s.global_ is not None]

    @property
    def takes_global(self) -> bool:
        """Whether the schema takes any key from `global` (`x-global`)."""
        return bool(self.global_keys)

    def merge(
        self, global_: Any | None, service: Any, instance: Any | None
    ) -> tuple[Any, dict[str, str]]:
        """Merges the layers: `global` (its keys named by `x-global`; secrets of `global` are
        never delivered, so its placeholders and masks count as absent) < `service` <
        `instance`. Answers the merged document (defaults not filled) and the layer of every
        key that comes from `global` or `instance`, by JSON Pointer."""
        for name, doc in (("service", service), ("instance", instance), ("global", global_)):
            if doc is not None and not isinstance(doc, dict):
                raise Rejected(f"the {name} document is not a JSON object")
        merged: dict[str, Any] = {}
        sources: dict[tuple[str, ...], str] = {}
        if isinstance(global_, dict):
            g = _strip_masks(_strip_placeholders(global_))
            for s in self.global_keys:
                assert s.global_ is not None
                found, value = _lookup_leaf(g, s.global_)
                if found:
                    _set(merged, s.tokens, copy.deepcopy(value))
                    sources[s.tokens] = "global"
        for layer, doc in (("service", service), ("instance", instance)):
            if not isinstance(doc, dict):
                continue
            for key in _leaves(doc, ()):
                for set_key in [k for k in sources if k[: len(key)] == key]:
                    del sources[set_key]
                sources[key] = layer
            deep_merge(merged, doc)
        layers = {
            _pointer(list(k)): v for k, v in sorted(sources.items()) if v in ("global", "instance")
        }
        return merged, layers

    def active_overrides(self, env: EnvLookup) -> list[str]:
        """The keys the environment overrides right now."""
        return [s.key for s in self.env_keys if s.env and env(s.env) is not None]

    def resolve(self, doc: Any, env: EnvLookup) -> Resolved[M]:
        """Layers the environment over `doc` and validates into the model, or `Rejected`."""
        if not isinstance(doc, dict):
            raise Rejected("the config is not a JSON object")
        filled = copy.deepcopy(doc)
        overrides: list[str] = []
        by_env: dict[str, str] = {}
        for s in self.env_keys:
            assert s.env
            raw = env(s.env)
            if raw is not None:
                _set(filled, s.tokens, parse_env(raw, s.type_, s.nullable))
                overrides.append(s.key)
                by_env[s.key] = s.env
        masked = [
            s.key
            for s in self.secret_keys
            if s.key not in by_env and _lookup(filled, s.tokens) == (True, SECRET_MASK)
        ]
        try:
            value = self.model.model_validate_json(json.dumps(filled), strict=True)
        except ValidationError as e:
            reasons = []
            for err in e.errors(include_url=False):
                path = _pointer([str(p) for p in err["loc"]]) or "/"
                blame = next(
                    (
                        f" (set by the environment variable {var})"
                        for key, var in by_env.items()
                        if path == key or path.startswith(key + "/")
                    ),
                    "",
                )
                reasons.append(f"{path}: {err['msg']}{blame}")
            raise Rejected("; ".join(reasons)) from None
        return Resolved(value=value, overrides=overrides, masked=masked)

    def without_secrets(self, doc: Any) -> Any:
        """`doc` without the values of secret keys and without placeholders: fit for disk."""
        if not isinstance(doc, dict):
            return {}
        out = copy.deepcopy(doc)
        for s in self.secret_keys:
            _remove(out, s.tokens)
        return _strip_placeholders(out)

    def changed_restart_keys(self, old: Any, new: Any) -> list[str]:
        """The `x-restart-required` keys whose value differs between two documents."""
        return [
            s.key for s in self.restart_keys if _lookup(old, s.tokens) != _lookup(new, s.tokens)
        ]


class HeldSecrets:
    """The secret values this client holds, by key and secret version: what its last read
    over REST (with the service's own token) gave. An envelope names each secret by version,
    so one naming only versions held here can be applied from MQTT directly."""

    def __init__(self, held: Mapping[tuple[str, int], Any] | None = None) -> None:
        self._held = dict(held or {})

    def __repr__(self) -> str:
        return repr(sorted(f"{k}@{v}" for k, v in self._held))

    @staticmethod
    def from_response(config: Any, secrets: Mapping[str, int]) -> HeldSecrets:
        held: dict[tuple[str, int], Any] = {}
        for key, version in secrets.items():
            tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in key.split("/")[1:])
            found, value = _lookup(config, tokens)
            if found and value != SECRET_MASK:
                held[(key, version)] = value
        return HeldSecrets(held)

    def fill(self, config: Any) -> Any | None:
        """`config` with every placeholder replaced by the value held for it, or None when
        one is not held (then the config must be read over REST)."""
        missing = False

        def walk(node: Any, tokens: list[str]) -> Any:
            nonlocal missing
            if isinstance(node, dict):
                if set(node) == {"$secret"} and isinstance(node["$secret"], int):
                    key = (_pointer(tokens), node["$secret"])
                    if key in self._held:
                        return copy.deepcopy(self._held[key])
                    missing = True
                    return node
                return {k: walk(v, [*tokens, k]) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v, [*tokens, str(i)]) for i, v in enumerate(node)]
            return node

        filled = walk(config, [])
        if missing or has_placeholder(filled):
            return None
        return filled
