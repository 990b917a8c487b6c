//! [`EmbeddedBroker`]: a Kafka-protocol broker (Tansu, memory storage)
//! running inside this process on a loopback port, so `demo` and `bench`
//! work with nothing installed. It holds its records in memory only and
//! stops when dropped. Built with the `embedded-broker` feature.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use thiserror::Error;
use tokio::runtime::Runtime;
use tracing::error;

/// Longest wait for the broker to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum EmbeddedBrokerError {
    #[error("finding a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    #[error("starting the broker's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("configuring the embedded broker: {0}")]
    Build(String),
    #[error("the embedded broker did not accept connections on {0} within {1:?}")]
    NotListening(SocketAddr, Duration),
}

pub struct EmbeddedBroker {
    address: SocketAddr,
    /// Dropping the runtime stops the broker's tasks.
    runtime: Option<Runtime>,
}

impl EmbeddedBroker {
    /// Starts a broker on a free loopback port, with `threads` runtime
    /// threads, and waits until it accepts connections.
    pub fn start(threads: usize) -> Result<EmbeddedBroker, EmbeddedBrokerError> {
        assert!(threads > 0);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(EmbeddedBrokerError::Port)?
            .port();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("embedded-broker")
            .enable_all()
            .build()
            .map_err(EmbeddedBrokerError::Runtime)?;
        let url = |s: String| {
            url::Url::parse(&s).map_err(|e| EmbeddedBrokerError::Build(format!("{s}: {e}")))
        };
        let listener = url(format!("tcp://{address}"))?;
        let storage = url("memory://tansu/".to_owned())?;
        let mut broker: Broker<Controller<StorageContainer>, StorageContainer> = runtime
            .block_on(
                Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                    .node_id(tansu_broker::NODE_ID)
                    .cluster_id("coupon-stream-embedded")
                    .incarnation_id(uuid::Uuid::nil())
                    .advertised_listener(listener.clone())
                    .storage(storage)
                    .listener(listener)
                    .silent(true)
                    .build(),
            )
            .map_err(|e| EmbeddedBrokerError::Build(e.to_string()))?;
        runtime.spawn(async move {
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                error!(message = "The embedded broker stopped.", error = %e);
            }
        });
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if started.elapsed() > START_TIMEOUT {
                return Err(EmbeddedBrokerError::NotListening(address, START_TIMEOUT));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(EmbeddedBroker {
            address,
            runtime: Some(runtime),
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
