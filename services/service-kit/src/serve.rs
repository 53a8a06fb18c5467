//! Serving a service's API beside its background worker (the relay, the
//! consumer) until a shutdown future completes, then stopping both in the
//! order the service needs.

use std::{future::Future, net::SocketAddr, pin::Pin};

use anyhow::{Context, Result};
use axum::Router;
use tokio::{net::TcpListener, sync::oneshot};

/// The future a worker runs until.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// When the worker is told to stop, relative to the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopWorker {
    /// As soon as shutdown begins, while the server finishes its requests
    /// (a consumer: stop taking work at once).
    First,
    /// Once the server has finished its requests (a relay: so that what they
    /// committed leaves before the process exits).
    AfterServer,
}

/// A background task that runs beside the server until told to stop.
pub struct Worker {
    name: &'static str,
    stop: StopWorker,
    run: Box<dyn FnOnce(Shutdown) -> Work + Send>,
}

impl Worker {
    /// `run` starts the work, which returns once the future it is given has
    /// completed; `name` names the task in errors (`"{name} task panicked"`).
    pub fn new<F, Fut>(name: &'static str, stop: StopWorker, run: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            name,
            stop,
            run: Box::new(move |stopped| Box::pin(run(stopped))),
        }
    }
}

/// A built, not yet running, service: its bound listener, its API and its
/// worker.
pub struct Service {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    worker: Worker,
}

impl Service {
    /// `name` is the service's, for its log lines.
    pub fn new(name: &'static str, listener: TcpListener, router: Router, worker: Worker) -> Self {
        Self {
            name,
            listener,
            router,
            worker,
        }
    }

    /// The bound address (tests bind port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves the API and runs the worker until `shutdown` completes (or the
    /// server fails); then stops the server gracefully, so that the requests
    /// in flight finish, and the worker as its [`StopWorker`] says; waits for
    /// both and returns. Logs `"{name} listening"` and `"{name} stopped"`.
    ///
    /// # Errors
    /// When the socket has no local address, the server fails, or a task
    /// panics.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Self {
            name,
            listener,
            router,
            worker,
        } = self;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "{name} listening");
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let (worker_stop, worker_stopped) = oneshot::channel::<()>();
        let serve = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = http_stopped.await;
        });
        let mut server = tokio::spawn(async move { serve.await });
        let task = tokio::spawn((worker.run)(Box::pin(async {
            let _ = worker_stopped.await;
        })));
        let early_exit = tokio::select! {
            () = shutdown => None,
            served = &mut server => Some(served),
        };
        let mut worker_stop = Some(worker_stop);
        if worker.stop == StopWorker::First
            && let Some(stop) = worker_stop.take()
        {
            let _ = stop.send(());
        }
        let served = match early_exit {
            Some(served) => served,
            None => {
                let _ = http_stop.send(());
                server.await
            }
        };
        if let Some(stop) = worker_stop.take() {
            let _ = stop.send(());
        }
        task.await
            .with_context(|| format!("{} task panicked", worker.name))?;
        served
            .context("server task panicked")?
            .context("HTTP server failed")?;
        tracing::info!("{name} stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs a service whose worker notes when it stops, and whose shutdown
    /// notes when it begins; returns the notes.
    async fn notes_of_a_run(stop: StopWorker) -> Vec<&'static str> {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (begin, begun) = oneshot::channel::<()>();
        let worker_notes = notes.clone();
        let shutdown_notes = notes.clone();
        let worker = Worker::new("worker", stop, move |stopped| async move {
            stopped.await;
            worker_notes.lock().expect("notes").push("worker stopped");
        });
        let service = Service::new("test-service", listener, Router::new(), worker);
        let run = service.run_until(async move {
            let _ = begun.await;
            shutdown_notes.lock().expect("notes").push("shutdown");
        });
        let _ = begin.send(());
        run.await.expect("a clean exit");
        notes.lock().expect("notes").clone()
    }

    #[tokio::test]
    async fn the_worker_is_stopped_once_shutdown_begins_whatever_the_order() {
        for stop in [StopWorker::First, StopWorker::AfterServer] {
            assert_eq!(
                notes_of_a_run(stop).await,
                ["shutdown", "worker stopped"],
                "{stop:?}"
            );
        }
    }
}
