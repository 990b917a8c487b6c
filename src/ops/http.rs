//! The operations HTTP endpoint, one port (`--metrics-addr`): `/metrics`
//! (Prometheus text), `/healthz`, `/readyz`, and the read-only state
//! queries under `/v1/sellers/...`. It runs on its own thread with a
//! single-threaded runtime and only reads: metrics from the recorder,
//! health flags, and partition state through [`StateQueries`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::oneshot;
use tracing::error;

use crate::ops::health::Health;
use crate::ops::telemetry;
use coupon_stream_core::state::query::{CampaignView, CouponView};

/// How often histogram and summary storage is compacted.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// An answer from live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAnswer<T> {
    Found(T),
    /// This instance owns the seller's partition, and it holds no such
    /// campaign or coupon.
    NotFound {
        partition: i32,
    },
    /// This instance does not own the seller's partition (another one
    /// does, or it is being handed over).
    NotOwned {
        partition: i32,
    },
    /// This instance owns the seller's partition and is still restoring
    /// its state.
    Restoring {
        partition: i32,
    },
    /// The answer is not known yet (no assignment, partition count unknown).
    Unavailable(&'static str),
}

/// Live-state lookups, implemented by the processor.
pub trait StateQueries: Send + Sync + 'static {
    fn campaign(&self, seller_id: &str, campaign_id: &str) -> QueryAnswer<CampaignView>;
    fn coupon(&self, seller_id: &str, coupon_id: &str) -> QueryAnswer<CouponView>;
}

/// No state to query (e.g. a process that only produces load).
pub struct NoState;

impl StateQueries for NoState {
    fn campaign(&self, _: &str, _: &str) -> QueryAnswer<CampaignView> {
        QueryAnswer::Unavailable("this process holds no partition state")
    }
    fn coupon(&self, _: &str, _: &str) -> QueryAnswer<CouponView> {
        QueryAnswer::Unavailable("this process holds no partition state")
    }
}

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the HTTP runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Arc<Health>,
    queries: Arc<dyn StateQueries>,
}

/// The running endpoint; stops when dropped.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port) and serves on a new thread.
    pub fn start(
        addr: SocketAddr,
        metrics: PrometheusHandle,
        health: Arc<Health>,
        queries: Arc<dyn StateQueries>,
    ) -> Result<HttpServer, HttpError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let state = AppState {
            metrics,
            health,
            queries,
        };
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            error!(message = "Cannot serve HTTP.", error = %e);
                            return;
                        }
                    };
                    let upkeep = state.metrics.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
                        loop {
                            tick.tick().await;
                            upkeep.run_upkeep();
                        }
                    });
                    let served = axum::serve(listener, router(state))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        error!(message = "The HTTP endpoint stopped.", error = %e);
                    }
                });
            })
            .map_err(HttpError::Runtime)?;
        Ok(HttpServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/v1/sellers/{seller_id}/campaigns/{campaign_id}",
            get(campaign),
        )
        .route("/v1/sellers/{seller_id}/coupons/{coupon_id}", get(coupon))
        .with_state(state)
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::render_event_time_lag(state.metrics.render()),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.as_str()),
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
}

fn answer<T: Serialize>(answer: QueryAnswer<T>, what: &str) -> Response {
    let error = |status: StatusCode, error, message, partition| {
        (
            status,
            Json(ErrorBody {
                error,
                message,
                partition,
            }),
        )
            .into_response()
    };
    match answer {
        QueryAnswer::Found(view) => Json(view).into_response(),
        QueryAnswer::NotFound { partition } => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what} in partition {partition}"),
            Some(partition),
        ),
        QueryAnswer::NotOwned { partition } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_owned",
            format!(
                "partition {partition}, which holds this seller, is not owned by this instance"
            ),
            Some(partition),
        ),
        QueryAnswer::Restoring { partition } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "restoring",
            format!("partition {partition}, which holds this seller, is restoring its state"),
            Some(partition),
        ),
        QueryAnswer::Unavailable(why) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            why.to_owned(),
            None,
        ),
    }
}

/// Runs a lookup off the runtime thread: a lookup of an active partition
/// may wait for the processor to finish its current batch.
async fn lookup<T: Send + 'static>(
    f: impl FnOnce() -> QueryAnswer<T> + Send + 'static,
) -> QueryAnswer<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(QueryAnswer::Unavailable("the lookup failed"))
}

async fn campaign(
    State(state): State<AppState>,
    Path((seller_id, campaign_id)): Path<(String, String)>,
) -> Response {
    let queries = Arc::clone(&state.queries);
    answer(
        lookup(move || queries.campaign(&seller_id, &campaign_id)).await,
        "campaign",
    )
}

async fn coupon(
    State(state): State<AppState>,
    Path((seller_id, coupon_id)): Path<(String, String)>,
) -> Response {
    let queries = Arc::clone(&state.queries);
    answer(
        lookup(move || queries.coupon(&seller_id, &coupon_id)).await,
        "coupon",
    )
}
