//! user-service: reads its configuration, then serves until SIGTERM.

use anyhow::Result;
use user_service::Config;

#[tokio::main]
async fn main() -> Result<()> {
    service_kit::telemetry::init("info,sqlx=warn");
    let config = Config::from_env()?;
    let service = user_service::build(config).await?;
    service.run_until(service_kit::shutdown::signal()).await
}
