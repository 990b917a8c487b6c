//! What operators see of and do to a running processor: the HTTP endpoint
//! (`/metrics`, `/healthz`, `/readyz`, state queries), the health flags it
//! reports, the Prometheus metrics, and shutdown on SIGTERM.

pub mod health;
pub mod http;
pub mod signals;
pub mod telemetry;
