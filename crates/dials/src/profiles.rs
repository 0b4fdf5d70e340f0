//! `dials profile list|save|show|apply|delete`.

use dials_wire::{ApplyProfile, Plan, Profile, ProfileList, SaveProfile};
use reqwest::Method;

use crate::cli::{ProfileApplyArgs, ProfileCommand, ProfileNameArgs, ProfileSaveArgs};
use crate::client::{Api, segment};
use crate::output::{Paint, paint, print_json, print_table, table, when};

/// Runs one `profile` subcommand.
pub async fn run(command: ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::List(args) => {
            let api = Api::from_args(&args)?;
            let list: ProfileList = api.get("/api/v1/profiles").await?;
            if args.json {
                return print_json(&list);
            }
            if list.profiles.is_empty() {
                crate::output::outln!("no profiles yet; save one with `dials profile save NAME`");
                return Ok(());
            }
            let mut t = table(&["NAME", "SERVICES", "SAVED", "BY", "DESCRIPTION"]);
            for p in &list.profiles {
                t.add_row(vec![
                    p.name.clone(),
                    p.services.join(", "),
                    when(p.created_at),
                    p.created_by.clone(),
                    p.description.clone(),
                ]);
            }
            print_table(&t);
            Ok(())
        }
        ProfileCommand::Save(args) => save(args).await,
        ProfileCommand::Show(args) => show(args).await,
        ProfileCommand::Apply(args) => apply(args).await,
        ProfileCommand::Delete(args) => {
            let api = Api::from_args(&args.client)?;
            let response = api
                .send(api.request(Method::DELETE, &profile_path(&args.name)))
                .await?;
            if !response.status().is_success() {
                return Err(crate::client::failure(response).await.into());
            }
            if args.client.json {
                return print_json(&serde_json::json!({"deleted": args.name}));
            }
            crate::output::outln!("deleted profile {}", args.name);
            Ok(())
        }
    }
}

fn profile_path(name: &str) -> String {
    format!("/api/v1/profiles/{}", segment(name))
}

async fn save(args: ProfileSaveArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let body = SaveProfile {
        name: args.name.clone(),
        description: args.description.clone().unwrap_or_default(),
        services: (!args.services.is_empty()).then(|| args.services.clone()),
        overwrite: args.overwrite,
    };
    let profile: Profile = api
        .call(api.request(Method::POST, "/api/v1/profiles").json(&body))
        .await?;
    if args.client.json {
        return print_json(&profile);
    }
    let n = profile.services.len();
    crate::output::outln!(
        "{}",
        paint(
            &format!(
                "saved profile {} with {n} service{}",
                profile.name,
                if n == 1 { "" } else { "s" }
            ),
            Paint::Green
        )
    );
    for s in &profile.services {
        crate::output::outln!("  {} (version {})", s.service, s.version);
    }
    Ok(())
}

async fn show(args: ProfileNameArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let profile: Profile = api.get(&profile_path(&args.name)).await?;
    if args.client.json {
        return print_json(&profile);
    }
    let mut out = format!(
        "{}\n",
        paint(&format!("profile {}", profile.name), Paint::Bold)
    );
    if !profile.description.is_empty() {
        out.push_str(&profile.description);
        out.push('\n');
    }
    out.push_str(&format!(
        "saved {} by {}\n",
        when(profile.created_at),
        profile.created_by
    ));
    for s in &profile.services {
        out.push_str(&format!(
            "\n{}\n{}\n",
            paint(
                &format!("{} (captured at version {})", s.service, s.version),
                Paint::Bold
            ),
            serde_json::to_string_pretty(&s.config)?
        ));
    }
    crate::output::emit(&out)
}

async fn apply(args: ProfileApplyArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let body = ApplyProfile {
        dry_run: args.dry_run,
        reason: args.reason.clone(),
    };
    let path = format!("{}/apply", profile_path(&args.name));
    let plan: Plan = api
        .call(api.request(Method::POST, &path).json(&body))
        .await?;
    if args.client.json {
        print_json(&plan)?;
    } else {
        crate::plan::print(&plan)?;
    }
    crate::plan::outcome(&plan)
}
