//! `echo-service`: a stand-in for the demo fleet's `tts-worker` that prints its config.
//!
//! It starts a dials client for its typed [`TtsConfig`] and prints one JSON line
//! `{"version": N, "config": {...}}` to stdout each time a config is applied, the first one
//! included; secrets print as `"********"`. `version` is the service document's; the config is
//! every layer merged, so a change to `global`'s `log_level` (the one key the struct takes
//! from `global`) or to this instance's override prints a new line with the same version and
//! the new value. Logs go to stderr (`DIALS_LOG=debug` for more).
//!
//! With `DIALS_UNTYPED=1` it echoes any service (`DIALS_SERVICE`) without a struct: the
//! document as the manager's layers merge it, keys in the manager's order. It registers no
//! schema and takes nothing from `global`. It cannot know which keys are secret, so a
//! service's own token prints them in clear: point it at a service without secrets, or give
//! it a viewer's token, which reads them masked.
//!
//! ```sh
//! DIALS_SERVER=http://127.0.0.1:8081 DIALS_TOKEN=$(cat dials-data/admin.token) \
//! DIALS_MQTT_URL=mqtt://127.0.0.1:1883 \
//! DIALS_PUBLIC_KEY=$(curl -s http://127.0.0.1:8081/api/v1/keys | jq -r .public_key) \
//! DIALS_LKG_PATH=/tmp/tts-worker.lkg DIALS_INSTANCE=pi-kitchen \
//!   cargo run --release -p dials-client --example echo-service
//! ```
//!
//! | variable | what | default |
//! |---|---|---|
//! | `DIALS_SERVER` | the manager's URL | `http://127.0.0.1:8081` |
//! | `DIALS_TOKEN` | the service's token | required |
//! | `DIALS_MQTT_URL` | the broker (`mqtt://host:port`) | none: REST only |
//! | `DIALS_MQTT_PREFIX` | the manager's topic prefix | empty |
//! | `DIALS_PUBLIC_KEY` | the manager's public key; two, comma-separated, during a rotation | required with MQTT |
//! | `DIALS_LKG_PATH` | the last-known-good file | none |
//! | `DIALS_SERVICE` | the service name | `tts-worker` |
//! | `DIALS_INSTANCE` | the instance name | the host name |
//! | `DIALS_ALLOW_DEFAULTS` | `1`: may start from the schema defaults | off |
//! | `DIALS_UNTYPED` | `1`: echo the service's document without the `tts-worker` struct | off |

mod tts_config;

use std::process::ExitCode;

use dials_client::{Builder, Client};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tts_config::TtsConfig;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn print(version: u64, config: &impl Serialize) {
    println!("{}", json!({ "version": version, "config": config }));
}

/// The client for `service`, set up from the environment (the table above).
fn builder<T>(service: String) -> Builder<T>
where
    T: DeserializeOwned + JsonSchema + Send + Sync + 'static,
{
    let mut builder = Client::<T>::builder(service)
        .server(var("DIALS_SERVER").unwrap_or_else(|| "http://127.0.0.1:8081".into()))
        .token(var("DIALS_TOKEN").unwrap_or_default())
        .allow_defaults(var("DIALS_ALLOW_DEFAULTS").as_deref() == Some("1"));
    if let Some(url) = var("DIALS_MQTT_URL") {
        builder = builder.mqtt(url);
    }
    if let Some(prefix) = var("DIALS_MQTT_PREFIX") {
        builder = builder.mqtt_prefix(prefix);
    }
    for key in var("DIALS_PUBLIC_KEY")
        .unwrap_or_default()
        .split([',', ' '])
    {
        if !key.is_empty() {
            builder = builder.public_key(key);
        }
    }
    if let Some(path) = var("DIALS_LKG_PATH") {
        builder = builder.lkg_path(path);
    }
    if let Some(instance) = var("DIALS_INSTANCE") {
        builder = builder.instance(instance);
    }
    builder
}

/// Starts the client and prints each config it applies until SIGINT.
async fn echo<T>(builder: Builder<T>) -> ExitCode
where
    T: DeserializeOwned + JsonSchema + Serialize + Send + Sync + 'static,
{
    let dials = match builder.start().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("echo-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rx = dials.subscribe();
    let first = rx.borrow_and_update().clone();
    print(dials.info().version, &*first);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let config = rx.borrow_and_update().clone();
                print(dials.info().version, &*config);
            }
        }
    }
    dials.shutdown().await;
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DIALS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let service = var("DIALS_SERVICE").unwrap_or_else(|| "tts-worker".into());
    if var("DIALS_UNTYPED").as_deref() == Some("1") {
        // Any object: a schema of its own would replace the service's, so none is registered.
        echo(builder::<Map<String, Value>>(service).register_schema(false)).await
    } else {
        echo(builder::<TtsConfig>(service)).await
    }
}
