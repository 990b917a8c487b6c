//! [`EmbeddedBroker`]: a Kafka-protocol broker (Tansu, memory storage)
//! running inside this process on a loopback port, so `demo` and `bench`
//! work with nothing installed. It holds its records in memory only and
//! stops when dropped. Built with the `embedded-broker` feature.
//!
//! The broker is Tansu's storage and group coordinator served by
//! [`end_txn::serve`], which adds the EndTxn route Tansu 0.6 lacks, so
//! transactions (`--guarantee exactly-once`) commit and abort.

mod end_txn;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::{BrokerRegistrationRequest, Storage as _, StorageContainer};
use thiserror::Error;
use tokio::runtime::Runtime;
use tracing::error;

const CLUSTER_ID: &str = "coupon-stream-embedded";

#[derive(Debug, Error)]
pub enum EmbeddedBrokerError {
    #[error("finding a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    #[error("starting the broker's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("configuring the embedded broker: {0}")]
    Build(String),
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
}

pub struct EmbeddedBroker {
    address: SocketAddr,
    /// Dropping the runtime stops the broker's tasks.
    runtime: Option<Runtime>,
}

impl EmbeddedBroker {
    /// Starts a broker on a free loopback port, with `threads` runtime
    /// threads. It accepts connections when this returns.
    pub fn start(threads: usize) -> Result<EmbeddedBroker, EmbeddedBrokerError> {
        assert!(threads > 0);
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(EmbeddedBrokerError::Port)?;
        let address = listener.local_addr().map_err(EmbeddedBrokerError::Port)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| EmbeddedBrokerError::Listen(address, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("embedded-broker")
            .enable_all()
            .build()
            .map_err(EmbeddedBrokerError::Runtime)?;
        let build = |e: &dyn std::fmt::Display| EmbeddedBrokerError::Build(e.to_string());
        let advertised = url::Url::parse(&format!("tcp://{address}")).map_err(|e| build(&e))?;
        let memory = url::Url::parse("memory://tansu/").map_err(|e| build(&e))?;
        let (listener, storage) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| EmbeddedBrokerError::Listen(address, e))?;
            let storage = StorageContainer::builder()
                .cluster_id(CLUSTER_ID)
                .node_id(tansu_broker::NODE_ID)
                .advertised_listener(advertised)
                .storage(memory)
                .silent(true)
                .build()
                .await
                .map_err(|e| build(&e))?;
            storage
                .register_broker(BrokerRegistrationRequest {
                    broker_id: tansu_broker::NODE_ID,
                    cluster_id: CLUSTER_ID.to_owned(),
                    incarnation_id: uuid::Uuid::nil(),
                    rack: None,
                })
                .await
                .map_err(|e| build(&e))?;
            Ok::<_, EmbeddedBrokerError>((listener, storage))
        })?;
        let coordinator = Controller::with_storage(storage.clone()).map_err(|e| build(&e))?;
        runtime.spawn(async move {
            if let Err(e) = end_txn::serve(listener, CLUSTER_ID, coordinator, storage).await {
                error!(message = "The embedded broker stopped.", error = %e);
            }
        });
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
