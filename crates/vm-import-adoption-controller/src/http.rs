//! The HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is serving)
//! and `/readyz` (standing by for the Lease, or leading with complete caches; not ready
//! while a watch has been failing for longer than its backoff cap).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::metrics::Metrics;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Whether `/readyz` answers 200.
    pub ready: Arc<AtomicBool>,
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let stalled = state.metrics.watches.stalled(crate::backoff::CAP);
    if !stalled.is_empty() {
        let body = format!("cannot watch the cluster: {} failing", stalled.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, body)
    } else if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced".to_owned())
    }
}

/// Serves on a bound `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints() {
        let ready = Arc::new(AtomicBool::new(false));
        let state = HttpState {
            metrics: Arc::new(Metrics::default()),
            ready: ready.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(axum::serve(listener, router(state)).into_future());

        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes())
                .await
                .expect("write");
            let mut out = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut out)
                .await
                .expect("read");
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get("/metrics").await;
        assert!(metrics.contains("vm_import_leader 0"), "{metrics}");
        server.abort();
    }
}
