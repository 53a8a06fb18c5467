//! What `/readyz` checks: MongoDB answers and NATS is connected.

use service_kit::{
    health::{Checking, Dependencies},
    nats::is_connected,
};

use super::AppState;

impl Dependencies for AppState {
    fn check(&self) -> Checking<'_> {
        Box::pin(async move {
            let mongodb = self.store.ping().await.is_ok();
            vec![("mongodb", mongodb), ("nats", is_connected(&self.nats))]
        })
    }
}
