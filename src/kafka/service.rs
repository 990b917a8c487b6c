//! `run` and `copy` as services: the processor (or the copy baseline) with
//! the operations endpoint beside it, until `shutdown` is set. The binary
//! calls these after parsing its flags; `demo` assembles the same parts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use coupon_stream_core::config::CoreConfig;
use metrics_exporter_prometheus::BuildError;
use thiserror::Error;

use crate::kafka::config::KafkaConfig;
use crate::kafka::processor::{Processor, ProcessorError};
use crate::ops::health::Health;
use crate::ops::http::{HttpError, HttpServer, NoState};
use crate::ops::telemetry;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("installing the metrics recorder: {0}")]
    Metrics(#[from] BuildError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Processor(#[from] ProcessorError),
}

/// The processor, with `/metrics`, health and state queries on
/// `metrics_addr`.
pub fn run(
    config: KafkaConfig,
    core: CoreConfig,
    metrics_addr: SocketAddr,
    shutdown: &AtomicBool,
) -> Result<(), ServiceError> {
    let metrics = telemetry::install()?;
    let health = Arc::new(Health::default());
    let processor = Processor::new(config, core, Arc::clone(&health));
    let state = Arc::new(processor.live_state());
    let _http = HttpServer::start(metrics_addr, metrics, health, state)?;
    processor.run(shutdown)?;
    Ok(())
}

/// The benchmark baseline ([`crate::tools::copy`]), with `/metrics` and
/// health on `metrics_addr`.
pub fn copy(
    config: &KafkaConfig,
    metrics_addr: SocketAddr,
    shutdown: &AtomicBool,
) -> Result<(), ServiceError> {
    let metrics = telemetry::install()?;
    let health = Arc::new(Health::default());
    let _http = HttpServer::start(
        metrics_addr,
        metrics,
        Arc::clone(&health),
        Arc::new(NoState),
    )?;
    crate::tools::copy::copy(config, health, shutdown)?;
    Ok(())
}
