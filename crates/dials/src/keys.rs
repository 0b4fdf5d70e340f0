//! `dials keys show|rotate`: the data directory's keys, read and replaced offline.

use std::path::PathBuf;

use anyhow::bail;
use dials_server::keys::{SIGNING_GRACE, retired_signing_keys, rotate_signing_key, signing_key};
use serde_json::json;

use crate::cli::{KeysArgs, KeysCommand};

fn data_dir(args: &KeysArgs) -> anyhow::Result<PathBuf> {
    let dir = args
        .data_dir
        .clone()
        .or_else(|| {
            std::env::var("DIALS_DATA_DIR")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("./dials-data"));
    if !dir.join("keys").join("signing.key").is_file() {
        bail!(
            "{} has no keys: start dials there once, or pass --data-dir",
            dir.display()
        );
    }
    Ok(dir)
}

pub fn run(command: KeysCommand) -> anyhow::Result<bool> {
    match command {
        KeysCommand::Show(args) => {
            let dir = data_dir(&args)?;
            let current = signing_key(&dir, None)?;
            let retired = retired_signing_keys(&dir)?;
            if args.json {
                let keys: Vec<_> = std::iter::once(json!({
                    "key": "signing", "key_id": current.key_id(),
                    "public_key": current.public_key_base64(), "status": "current",
                }))
                .chain(retired.iter().map(|k| json!({
                    "key": "signing", "key_id": k.key_id, "public_key": k.public_key,
                    "status": "retired", "trusted_until": (k.retired_at + SIGNING_GRACE).to_string(),
                })))
                .collect();
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<8} {:<16} {:<8} PUBLIC KEY", "KEY", "ID", "STATUS");
                println!(
                    "{:<8} {:<16} {:<8} {}",
                    "signing",
                    current.key_id(),
                    "current",
                    current.public_key_base64()
                );
                for k in &retired {
                    println!(
                        "{:<8} {:<16} {:<8} {}",
                        "signing", k.key_id, "retired", k.public_key
                    );
                }
            }
            Ok(true)
        }
        KeysCommand::Rotate { which, args } => {
            let dir = data_dir(&args)?;
            debug_assert_eq!(which, "signing");
            let (old, new) = rotate_signing_key(&dir)?;
            if args.json {
                println!(
                    "{}",
                    json!({"key": "signing", "old_key_id": old, "new_key_id": new})
                );
            } else {
                println!("signing key rotated: {old} -> {new}");
                println!("restart dials to sign with the new key; {old} stays trusted for 7 days");
            }
            Ok(true)
        }
    }
}
