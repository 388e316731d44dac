//! HTTP admin endpoints: `/health`, `/ready`, `/metrics` (Prometheus), `/status` (JSON).

mod metrics;

pub use metrics::{Metrics, Status};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::error::CdcError;

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route("/status", get(status))
        .with_state(metrics)
}

async fn ready(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}

async fn prometheus(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render_prometheus())
}

async fn status(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    axum::Json(m.status())
}

/// Binds `listen` and serves until `shutdown` fires. Binding errors are definite.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, CdcError> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        CdcError::definite(format!("cannot listen on {listen} for HTTP: {e}"), "choose a free address in [http] listen")
    })?;
    tracing::info!(%listen, "HTTP admin listening");
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, router(metrics)).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "HTTP admin server stopped");
        }
    }))
}
