//! The commands that change a service: `set` (one merge patch), `restore` and `delete`.

use dials_wire::{ConfigResponse, FleetRestore, PatchConfig, Plan, RestoreRequest, SchemaResponse};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::cli::{DeleteArgs, RestoreArgs, SetArgs};
use crate::client::{Api, EXIT_ERROR, Failure, failure, service_path, usage};
use crate::output::{Paint, compact, paint, print_json};
use crate::values::{insert, key_segments, parse_time, pointer, typed_value};

/// The service's schema, or `None` when it has none.
pub async fn schema(api: &Api, service: &str) -> anyhow::Result<Option<Value>> {
    let path = format!("{}/schema", service_path(service)?);
    let response = api.send(api.request(Method::GET, &path)).await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(failure(response).await.into());
    }
    let answer: SchemaResponse = response.json().await?;
    Ok(Some(answer.schema))
}

/// `dials set SERVICE KEY=VALUE…`.
pub async fn set(args: SetArgs) -> anyhow::Result<()> {
    let mut pairs = Vec::new();
    for pair in &args.pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(usage(format!(
                "expected KEY=VALUE, got {pair:?} (e.g. volume_percent=60)"
            )));
        };
        let segments = key_segments(key)?;
        // One patch cannot set a key and a key inside it: one would silently undo the other.
        let overlap = pairs
            .iter()
            .map(|(other, _): &(Vec<String>, String)| other)
            .find(|other| other.starts_with(&segments) || segments.starts_with(other));
        if let Some(other) = overlap {
            return Err(usage(if *other == segments {
                format!("{} is given twice; give it once", pointer(&segments))
            } else {
                format!(
                    "{} and {} overlap: one would undo the other in one patch; set them in \
                     two commands",
                    pointer(other),
                    pointer(&segments)
                )
            }));
        }
        pairs.push((segments, value.to_owned()));
    }
    let api = Api::from_args(&args.client)?;
    let schema = schema(&api, &args.service).await?;
    let mut patch = Map::new();
    let mut shown = Vec::new();
    for (segments, text) in &pairs {
        let value = typed_value(text, schema.as_ref(), segments);
        shown.push((pointer(segments), value.clone()));
        insert(&mut patch, segments, value);
    }
    let body = PatchConfig {
        config: Value::Object(patch),
        expected_version: None,
        reason: args.reason.clone(),
    };
    let path = format!("{}/config", service_path(&args.service)?);
    let answer = send_patch(&api, &path, &body, &args).await?;
    if args.client.json {
        return print_json(&answer);
    }
    crate::output::outln!(
        "{}",
        paint(
            &format!("{} is now at version {}", answer.service, answer.version),
            Paint::Green
        )
    );
    for (key, value) in shown {
        // What the server stored (a secret shows masked), else what was sent.
        let stored = answer.config.pointer(&key).unwrap_or(&value);
        crate::output::outln!("  {key} = {}", compact(stored));
    }
    Ok(())
}

/// Sends the merge patch. A service that does not exist is created only with `--create`: a
/// misspelt name is not a new service.
async fn send_patch(
    api: &Api,
    path: &str,
    body: &PatchConfig,
    args: &SetArgs,
) -> anyhow::Result<ConfigResponse> {
    let response = api
        .send(api.request(Method::PATCH, path).json(body))
        .await?;
    if response.status() != StatusCode::NOT_FOUND {
        return api.answer(response).await;
    }
    if !args.create {
        return Err(Failure::new(
            EXIT_ERROR,
            format!(
                "service {} does not exist: it has no config and no registered schema; add \
                 --create to create it",
                args.service
            ),
        )
        .into());
    }
    let response = api
        .send(
            api.request(Method::PATCH, path)
                .header("If-None-Match", "*")
                .json(body),
        )
        .await?;
    if response.status() == StatusCode::PRECONDITION_FAILED {
        // Someone else created it meanwhile: the patch goes on top of theirs.
        return api.call(api.request(Method::PATCH, path).json(body)).await;
    }
    api.answer(response).await
}

/// `dials delete SERVICE [--version V]`: deletes the version it read (or was told), only.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let base = service_path(&args.service)?;
    let version = match args.version {
        Some(v) => v,
        None => {
            let current: ConfigResponse = api.get(&format!("{base}/config")).await?;
            current.version
        }
    };
    let response = api
        .send(
            api.request(Method::DELETE, &base)
                .header("If-Match", format!("\"{version}\"")),
        )
        .await?;
    if !response.status().is_success() {
        return Err(failure(response).await.into());
    }
    if args.client.json {
        return print_json(&serde_json::json!({
            "service": args.service,
            "deleted_version": version,
        }));
    }
    crate::output::outln!(
        "{}",
        paint(
            &format!("deleted {} (it was at version {version})", args.service),
            Paint::Green
        )
    );
    crate::output::outln!(
        "  its history stays; `dials restore {} --version {version}` brings it back",
        args.service
    );
    Ok(())
}

/// `dials restore SERVICE --version V | --at T`, and `dials restore --all --at T [SERVICE…]`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let at = args.at.as_deref().map(parse_time).transpose()?;
    if args.all {
        let Some(at) = at else {
            return Err(usage("--all needs --at TIME"));
        };
        return fleet_restore(args, at).await;
    }
    let service = match args.services.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(usage(
                "name the service to restore (or use --all --at TIME)",
            ));
        }
        _ => {
            return Err(usage(
                "one service at a time, or --all --at TIME to restore several together",
            ));
        }
    };
    let api = Api::from_args(&args.client)?;
    let body = RestoreRequest {
        version: args.version,
        at,
        expected_version: None,
        reason: args.reason.clone(),
    };
    let path = format!("{}/restore", service_path(&service)?);
    let answer: ConfigResponse = api
        .call(api.request(Method::POST, &path).json(&body))
        .await?;
    if args.client.json {
        return print_json(&answer);
    }
    let from = match (args.version, &args.at) {
        (Some(v), _) => format!("version {v}"),
        (None, Some(t)) => format!("its state at {t}"),
        (None, None) => "an earlier state".into(),
    };
    crate::output::outln!(
        "{}",
        paint(
            &format!(
                "{} restored to {from}, saved as version {}",
                answer.service, answer.version
            ),
            Paint::Green
        )
    );
    Ok(())
}

/// `dials restore --all --at T [SERVICE…]`: the fleet restore, one transaction.
async fn fleet_restore(args: RestoreArgs, at: time::OffsetDateTime) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let body = FleetRestore {
        at,
        services: (!args.services.is_empty()).then(|| args.services.clone()),
        dry_run: args.dry_run,
        reason: args.reason.clone(),
    };
    let plan: Plan = api
        .call(api.request(Method::POST, "/api/v1/restore").json(&body))
        .await?;
    if args.client.json {
        print_json(&plan)?;
    } else {
        crate::plan::print(&plan)?;
    }
    crate::plan::outcome(&plan)
}
