//! The operator's endpoint: `/healthz`, `/readyz` and `/metrics` over HTTP/1.1, on
//! `server.listen` (loopback by default). Knows only [`Metrics`].
//!
//! One [`Server`] serves for the life of the process, across reloads: what it serves (the
//! metrics, health and readiness) belongs to the process, not to one run, so a reload
//! neither resets a counter nor closes the port. Only a new `server.listen` moves it.

mod exposition;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

pub use exposition::{Format, negotiate, to_prometheus};

/// The endpoint, serving until stopped.
#[derive(Debug)]
pub struct Server {
    /// The address as configured (`server.listen`), which a reload compares with its own.
    configured: SocketAddr,
    /// How long a stage's piece of work may last before `/healthz` calls it wedged, in
    /// milliseconds; a reload may change it.
    alive_within: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `address` (`server.listen`), without serving yet.
    pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
        TcpListener::bind(address).await
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `listener`, bound for `configured`.
    /// `alive_within`: how long one stage's piece of work, or the gap between checkpoint
    /// ticks, may last before `/healthz` calls the pipeline wedged (see
    /// [`crate::liveness`]).
    pub fn start(
        listener: TcpListener,
        configured: SocketAddr,
        metrics: Arc<Metrics>,
        alive_within: Duration,
    ) -> Server {
        let bound = listener.local_addr().map_or(configured, |bound| bound);
        tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
        let alive_within = Arc::new(AtomicU64::new(millis(alive_within)));
        let task = tokio::spawn(serve(listener, metrics, Arc::clone(&alive_within)));
        Server {
            configured,
            alive_within,
            task,
        }
    }

    /// The configured address it serves on.
    pub fn configured(&self) -> SocketAddr {
        self.configured
    }

    /// A new bound for `/healthz` (a reload changed `state.commit_interval`).
    pub fn set_alive_within(&self, alive_within: Duration) {
        self.alive_within
            .store(millis(alive_within), Ordering::Relaxed);
    }

    /// Stops accepting connections and waits until the port is closed.
    pub async fn stop(self) {
        self.task.abort();
        // Only cancellation can end the task; the listener is dropped when it is done.
        drop(self.task.await);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Accepts connections on `listener` until the task is aborted.
async fn serve(listener: TcpListener, metrics: Arc<Metrics>, alive_within: Arc<AtomicU64>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        let alive_within = Arc::clone(&alive_within);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let within = Duration::from_millis(alive_within.load(Ordering::Relaxed));
                let response = respond(&request, &metrics, within);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

fn respond<B>(
    request: &Request<B>,
    metrics: &Metrics,
    alive_within: Duration,
) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match request.uri().path() {
        "/healthz" => {
            let wedged = metrics.liveness.wedged(Instant::now(), alive_within);
            if wedged.is_empty() {
                (StatusCode::OK, "ok\n".to_owned(), "text/plain")
            } else {
                let body = format!("wedged: {}\n", wedged.join(", "));
                (StatusCode::SERVICE_UNAVAILABLE, body, "text/plain")
            }
        }
        "/readyz" if metrics.is_ready() => (StatusCode::OK, "ready\n".to_owned(), "text/plain"),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n".to_owned(),
            "text/plain",
        ),
        "/metrics" => {
            let accept = request
                .headers()
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok());
            let format = negotiate(accept);
            let body = match format {
                Format::OpenMetrics => metrics.encode(),
                Format::Prometheus => to_prometheus(&metrics.encode()),
            };
            (StatusCode::OK, body, format.content_type())
        }
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n".to_owned(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
