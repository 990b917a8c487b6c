//! What operators see of a running processor: the HTTP endpoint
//! (`/metrics`, `/healthz`, `/readyz`, state queries), the health flags it
//! reports, and the Prometheus metrics.

pub mod health;
pub mod http;
pub mod telemetry;
