//! The OpenAPI 3.1 document's frame; the paths come from the handlers' annotations.

use crate::extract::{INSTANCE_CURSOR_PATTERN, IfMatch, Page};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description served at `/api/v1/openapi.json` and browsable at `/docs`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dials",
        description = "Live, typed, signed configuration for fleets of small services.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and status"),
        (name = "config", description = "Service config documents"),
        (name = "schema", description = "Schemas, validation and search"),
        (name = "history", description = "Versions, diffs, restores and per-key history"),
        (name = "security", description = "Tokens, browser sessions and the access log"),
        (name = "fleet", description = "Signing keys, instance reports and the change stream"),
        (name = "secrets", description = "Secret values: set, remove, reveal; last-known-good keys"),
        (name = "profiles", description = "Named snapshots of services, applied atomically"),
        (name = "transfer", description = "Export and import of every service, schema and profile"),
        (name = "layers", description = "Instance override documents and each instance's effective config"),
        (name = "backups", description = "Backups of the database, taken and listed by the server"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as generated from the handlers, merged with `extra` (the secret routes,
/// which the OpenAPI router cannot express) and completed where annotations cannot say it:
///
/// - every status an operation of a kind can answer, added where its annotation does not list
///   it, so a generated client knows every answer it can get: with a bearer token 401 (no or
///   bad credentials), 403 (role, service scope or CSRF), 429 (too many failed
///   authentications from the address) and 503 (database unavailable); with path parameters
///   400 (a malformed name or number) and 404; with query parameters 400; with `If-Match` or
///   `If-None-Match` 412; with a body 400 (malformed JSON, wrong shape), 408 (not sent in time),
///   413 (over the size limit) and 415 (not JSON);
/// - the rules a parameter must follow ([`parameter_rules`]), and the request bodies whose
///   fields depend on each other ([`body_rules`]).
pub fn complete(openapi: utoipa::openapi::OpenApi, extra: utoipa::openapi::OpenApi) -> Value {
    let mut openapi = openapi;
    for (path, item) in extra.paths.paths {
        openapi.paths.paths.entry(path).or_insert(item);
    }
    if let Some(extra) = extra.components {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in extra.schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    // Served as JSON as it is: utoipa's types cannot hold every keyword the rules below use.
    let mut doc = serde_json::to_value(&openapi).unwrap_or_default();
    complete_value(&mut doc);
    doc
}

fn complete_value(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    complete_operation(path, method, operation);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        body_rules(schemas);
    }
}

fn complete_operation(path: &str, method: &str, operation: &mut Value) {
    let mut add: Vec<(&str, &str)> = Vec::new();
    // The session routes check a token without declaring bearer security.
    let authenticated = operation["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
        || operation["responses"].get("401").is_some();
    if authenticated {
        add.extend([
            ("401", "No credentials, or credentials that are not valid"),
            (
                "403",
                "The role or service scope does not allow this (or a CSRF check failed)",
            ),
            ("429", "Too many failed authentications from this address"),
            (
                "503",
                "The database is unavailable; retry after `Retry-After` seconds",
            ),
        ]);
    }
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut() {
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            let place = parameter["in"].as_str().unwrap_or_default().to_owned();
            match place.as_str() {
                "path" => add.extend([
                    ("400", "A malformed path parameter"),
                    ("404", "No such resource"),
                ]),
                "query" => add.push(("400", "A malformed query parameter")),
                "header" if name.to_ascii_lowercase().starts_with("if-") => {
                    add.push((
                        "412",
                        "An `If-Match` or `If-None-Match` precondition failed",
                    ));
                    add.push(("400", "A malformed `If-Match` or `If-None-Match`"));
                }
                _ => {}
            }
            if let Some(schema) = parameter_rules(path, method, &place, &name) {
                parameter["schema"] = schema;
            }
        }
    }
    if operation.get("requestBody").is_some() {
        add.extend([
            ("400", "Malformed JSON, or a body of the wrong shape"),
            ("408", "The body did not arrive in time"),
            ("413", "The body is larger than the limit"),
            ("415", "The body is not JSON"),
        ]);
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, description) in add {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": {dials_wire::PROBLEM_JSON: {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                }}
            })
        });
    }
}

/// The schema of a parameter whose rules the handler checks but its annotation cannot say.
fn parameter_rules(path: &str, method: &str, place: &str, name: &str) -> Option<Value> {
    let schema = match (place, name) {
        ("path" | "query", "service") => {
            json!({"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"})
        }
        ("path", "id") => json!({"type": "string", "format": "uuid"}),
        ("path", "name") => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}),
        ("path", "version") => json!({"type": "integer", "format": "int64", "minimum": 1}),
        // 0 means "none": `from` before the first version, `to` the current one.
        ("query", "from" | "to") => json!({"type": "integer", "format": "int64", "minimum": 0}),
        // A JSON Pointer: `~` only as `~0` or `~1`.
        ("path" | "query", "key") => json!({"type": "string", "pattern": "^([^~]|~[01])*$"}),
        ("query", "since" | "until" | "at") => json!({"type": "string", "format": "date-time"}),
        ("query", "limit") => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        // The instances of a service page by name, the newest-first lists by record id.
        ("query", "cursor") if path.ends_with("/instances") => {
            json!({"type": "string", "pattern": INSTANCE_CURSOR_PATTERN})
        }
        ("query", "cursor") => json!({"type": "string", "pattern": Page::CURSOR_PATTERN}),
        ("query", "complexity") => json!({"type": "string", "enum": ["simple", "advanced"]}),
        ("header", "If-Match") => json!({"type": "string", "pattern": IfMatch::PATTERN}),
        ("header", "If-None-Match") if method != "get" => json!({"type": "string", "enum": ["*"]}),
        _ => return None,
    };
    Some(schema)
}

/// Request bodies whose fields depend on each other: a restore names exactly one of `version`
/// and `at`; a token has a `service` exactly when its role is `service`.
fn body_rules(schemas: &mut Map<String, Value>) {
    let rules = [
        (
            "RestoreRequest",
            json!({"oneOf": [
                {"properties": {"version": {"type": "integer"}}, "required": ["version"],
                 "not": {"properties": {"at": {"type": "string"}}, "required": ["at"]}},
                {"properties": {"at": {"type": "string"}}, "required": ["at"],
                 "not": {"properties": {"version": {"type": "integer"}}, "required": ["version"]}}
            ]}),
        ),
        (
            "CreateToken",
            json!({"oneOf": [
                {"properties": {"role": {"const": "service"}, "service": {"type": "string"}},
                 "required": ["service"]},
                {"properties": {"role": {"enum": ["viewer", "operator", "admin"]}},
                 "not": {"properties": {"service": {"type": "string"}}, "required": ["service"]}}
            ]}),
        ),
    ];
    for (name, rule) in rules {
        if let Some(schema) = schemas.get_mut(name) {
            let own = schema.take();
            *schema = json!({"allOf": [own, rule]});
        }
    }
}
