//! The operator's endpoint: `/healthz`, `/readyz` and `/metrics` over HTTP/1.1, on
//! `server.listen` (loopback by default). Knows only [`Metrics`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Serves the three endpoints on `listener` until the task is dropped. `alive_within`: how
/// long one stage's piece of work, or the gap between checkpoint ticks, may last before
/// `/healthz` calls the pipeline wedged (see [`crate::liveness`]).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, alive_within: Duration) {
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
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &metrics, alive_within);
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
        "/metrics" => (
            StatusCode::OK,
            metrics.encode(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n".to_owned(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
