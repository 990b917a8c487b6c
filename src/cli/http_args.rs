//! [`HttpArgs`]: where the HTTP endpoint listens, for the commands that
//! serve one (`run` and `demo`).

use std::net::SocketAddr;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Address of the HTTP endpoint: /metrics, /healthz, /readyz, /v1/... state queries.
    #[arg(
        long,
        env = "COUPON_STREAM_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_addr: SocketAddr,
}
