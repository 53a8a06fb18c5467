//! notification-service: with no command, consumes and serves until SIGTERM.
//! The other commands check or mend the copy (see `repair.rs`) and print a
//! JSON report:
//!
//! ```text
//! notification-service [serve]   consume the events and serve the API
//! notification-service drift     how many users the copy has wrong (exit 1 if any)
//! notification-service replay    rebuild the copy from the stream
//! notification-service resync    rebuild the copy from user-service's API
//! ```
//!
//! All read the same environment variables as the service.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use notification_service::{
    Config, build, repair, startup::connect_database, store::NotificationStore,
};

const USAGE: &str = "usage: notification-service [serve | drift | replay | resync]";

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::telemetry::init("info,mongodb=warn");
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        None | Some("serve") => serve().await.map(|()| ExitCode::SUCCESS),
        Some("drift" | "replay" | "resync") => tool(command.as_deref().unwrap_or_default()).await,
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprintln!("unknown command {other:?}\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("notification-service: {e:#}");
        ExitCode::FAILURE
    })
}

async fn serve() -> Result<()> {
    let config = Config::from_env()?;
    let service = build(config).await?;
    service.run_until(service_kit::shutdown::signal()).await
}

async fn tool(command: &str) -> Result<ExitCode> {
    let config = Config::from_env()?;
    // A repair may run beside the service (any number of instances): every
    // update is a compare-and-set on the copy's version.
    let db = connect_database(&config).await?;
    let http = repair::http_client()?;
    let store = NotificationStore::new(db);
    store
        .prepare()
        .await
        .context("preparing MongoDB (MONGODB_URI)")?;
    let json = match command {
        "drift" => {
            let drift = repair::drift(&http, &config.user_service_url, &store).await?;
            println!("{}", serde_json::to_string(&drift)?);
            return Ok(if drift.in_sync() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        "replay" => {
            let nats = config.nats.connect_once().await?;
            let js = async_nats::jetstream::new(nats);
            serde_json::to_string(
                &repair::replay(&js, &config.nats.stream, &config.nats.subject, &store).await?,
            )?
        }
        _ => {
            serde_json::to_string(&repair::resync(&http, &config.user_service_url, &store).await?)?
        }
    };
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
