//! user-service: reads its configuration, then serves until SIGTERM.

use anyhow::Result;
use user_service::{Application, Config};

#[tokio::main]
async fn main() -> Result<()> {
    service_kit::telemetry::init("info,sqlx=warn");
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    app.run_until(service_kit::shutdown::signal()).await
}
