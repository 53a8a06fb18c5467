//! A service running in the test's process until stopped: the spawn, stop
//! and abort-on-drop every test app needs.

use service_kit::serve::Service;
use tokio::{sync::oneshot, task::JoinHandle};

/// A built service spawned on the runtime. Dropping it aborts the service.
pub struct Running {
    /// `http://` and the address the service listens on.
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Spawns `service` until [`Running::stop`].
    pub fn start(service: Service) -> Self {
        let addr = service.local_addr().expect("the service's address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the service gracefully and waits for it to exit; panics unless
    /// it exits cleanly. Stopping twice does nothing.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("no panic").expect("clean exit");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use service_kit::serve::{StopWorker, Worker};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn stop_ends_the_service_and_a_second_stop_does_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let worker = Worker::new("worker", StopWorker::First, |stopped| stopped);
        let service = Service::new("test-service", listener, axum::Router::new(), worker);
        let mut running = Running::start(service);
        assert_eq!(running.base, format!("http://{addr}"));
        running.stop().await;
        running.stop().await;
    }
}
