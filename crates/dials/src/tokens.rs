//! `dials token create|list|revoke`. `create` also works offline: with no server on the data
//! directory (its `dials.lock` is free) the token goes straight into the database.

use std::path::Path;

use anyhow::{Context, bail};
use comfy_table::Color;
use dials_server::{ServerSettings, hash_token, new_token_secret, open_store};
use dials_store::TokenRecord;
use dials_wire::{CreateToken, TokenCreated, TokenInfo, TokenList};
use reqwest::Method;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{ClientArgs, ServeArgs, TokenCommand, TokenCreateArgs};
use crate::client::{Api, EXIT_ERROR, Failure, data_dir, explicit_server, segment, usage};
use crate::output::{Paint, cell, paint, print_json, print_table, table, when, when_opt};
use crate::settings::{Environment, SettingError};

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args).await,
        TokenCommand::List(args) => list(args).await,
        TokenCommand::Revoke { id, client } => revoke(&id, client).await,
    }
}

async fn create(args: TokenCreateArgs) -> anyhow::Result<()> {
    let expires_at = args
        .expires
        .as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
                usage(format!(
                    "invalid --expires {t:?}: expected RFC 3339 (2027-01-01T00:00:00Z)"
                ))
            })
        })
        .transpose()?;
    match (args.role.as_str(), &args.service) {
        ("service", None) => return Err(usage("a service token needs --service SERVICE")),
        (role, Some(_)) if role != "service" => {
            return Err(usage(
                "only a service token (--role service) has a --service",
            ));
        }
        _ => {}
    }
    let request = CreateToken {
        name: args.name.clone(),
        role: args.role.clone(),
        service: args.service.clone(),
        expires_at,
    };
    let created = if explicit_server(&args.client).is_some() {
        through_api(&args.client, &request).await?
    } else {
        let dir = data_dir(args.client.data_dir.as_deref());
        match offline_lock(&dir)? {
            Some(lock) => {
                let created = offline(&args, &request).await;
                drop(lock);
                created?
            }
            None => through_api(&args.client, &request).await.map_err(|e| {
                anyhow::anyhow!(
                    "a dials server holds {} but cannot be asked for a token ({e:#}); pass \
                     --server with the address from its `listening on` line, or stop it to \
                     create the token offline",
                    dir.display()
                )
            })?,
        }
    };
    if args.client.json {
        return print_json(&created);
    }
    let i = &created.info;
    crate::output::outln!(
        "{}",
        paint(
            &format!("created token {} ({})", i.name, i.role),
            Paint::Green
        )
    );
    crate::output::outln!("id       {}", i.id);
    if let Some(s) = &i.service {
        crate::output::outln!("service  {s}");
    }
    crate::output::outln!("expires  {}", when_opt(i.expires_at));
    crate::output::outln!("token    {}", created.token);
    eprintln!("this is the only time the token is shown: store it now");
    Ok(())
}

async fn through_api(client: &ClientArgs, request: &CreateToken) -> anyhow::Result<TokenCreated> {
    let api = Api::from_args(client)?;
    api.call(api.request(Method::POST, "/api/v1/tokens").json(request))
        .await
}

/// Takes the data directory's lock if no server holds it: `None` when one does.
fn offline_lock(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    if !dir.join("keys").is_dir() && !dir.join("dials.db").exists() {
        // Never started here: the server (if any) is elsewhere.
        return Err(Failure::new(
            EXIT_ERROR,
            format!(
                "{} is not a dials data directory: pass --data-dir, or --server to ask a running \
                 dials",
                dir.display()
            ),
        )
        .into());
    }
    let path = dir.join("dials.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Writes the token straight into the database (the lock is held by the caller).
async fn offline(args: &TokenCreateArgs, request: &CreateToken) -> anyhow::Result<TokenCreated> {
    let settings = settings(args)?;
    if let Some(path) = settings.database_url.strip_prefix("sqlite://")
        && !Path::new(path).exists()
    {
        bail!("{path} does not exist: start `dials serve` there once first");
    }
    let store = open_store(&settings.database_url).await?;
    if let Some(service) = &request.service {
        let valid = service.len() <= 63
            && service.starts_with(|c: char| c.is_ascii_lowercase())
            && service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            store.close().await;
            return Err(usage(format!(
                "invalid --service {service:?}: a service name is lowercase letters, digits and -"
            )));
        }
    }
    let secret = new_token_secret();
    let record = TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: request.name.clone(),
        role: request.role.clone(),
        service: request.service.clone(),
        hash: hash_token(&secret),
        created_at: OffsetDateTime::now_utc(),
        created_by: "dials token create (offline)".into(),
        expires_at: request.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let inserted = store.insert_token(&record).await;
    store.close().await;
    inserted.context("cannot store the token")?;
    Ok(TokenCreated {
        info: TokenInfo {
            id: record.id,
            name: record.name,
            role: record.role,
            service: record.service,
            created_at: record.created_at,
            created_by: record.created_by,
            expires_at: record.expires_at,
            last_used_at: None,
            revoked_at: None,
        },
        token: secret,
    })
}

/// The data directory and database as `dials serve` would read them.
fn settings(args: &TokenCreateArgs) -> anyhow::Result<ServerSettings> {
    let serve = ServeArgs {
        data_dir: args.client.data_dir.clone(),
        database: args.database.clone(),
        ..Default::default()
    };
    let resolved = crate::settings::resolve(&serve, &Environment::from_process())
        .map_err(|SettingError(message)| anyhow::anyhow!(message))?;
    Ok(resolved.server)
}

async fn list(args: ClientArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args)?;
    let list: TokenList = api.get("/api/v1/tokens").await?;
    if args.json {
        return print_json(&list);
    }
    let now = OffsetDateTime::now_utc();
    let mut t = table(&[
        "ID",
        "NAME",
        "ROLE",
        "SERVICE",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ]);
    for i in &list.tokens {
        let (state, colour) = if i.revoked_at.is_some() {
            ("revoked", Some(Color::Red))
        } else if i.expires_at.is_some_and(|e| e <= now) {
            ("expired", Some(Color::Yellow))
        } else {
            ("active", Some(Color::Green))
        };
        t.add_row(vec![
            cell(i.id.to_string(), None),
            cell(i.name.clone(), None),
            cell(i.role.clone(), None),
            cell(i.service.clone().unwrap_or_else(|| "-".into()), None),
            cell(when(i.created_at), None),
            cell(when_opt(i.expires_at), None),
            cell(when_opt(i.last_used_at), None),
            cell(state, colour),
        ]);
    }
    print_table(&t);
    Ok(())
}

async fn revoke(id: &str, args: ClientArgs) -> anyhow::Result<()> {
    let id = uuid::Uuid::parse_str(id)
        .map_err(|_| usage(format!("invalid token id {id:?}: see `dials token list`")))?;
    let api = Api::from_args(&args)?;
    let path = format!("/api/v1/tokens/{}", segment(&id.to_string()));
    let response = api.send(api.request(Method::DELETE, &path)).await?;
    if !response.status().is_success() {
        return Err(crate::client::failure(response).await.into());
    }
    if args.json {
        return print_json(&serde_json::json!({"id": id, "revoked": true}));
    }
    crate::output::outln!("revoked token {id}");
    Ok(())
}
