//! What `/readyz` checks: PostgreSQL answers and NATS is connected. Writes
//! still succeed while NATS is down (events wait in the outbox), so it is a
//! signal, not a gate.

use service_kit::{
    health::{Checking, Dependencies},
    nats::is_connected,
};

use super::AppState;

impl Dependencies for AppState {
    fn check(&self) -> Checking<'_> {
        Box::pin(async move {
            let postgres = sqlx::query("SELECT 1").execute(self.pool()).await.is_ok();
            vec![("postgres", postgres), ("nats", is_connected(&self.nats))]
        })
    }
}
