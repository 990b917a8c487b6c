//! [`BrokerChoice`]: the broker `demo` and `bench` talk to, a user's cluster
//! (`--brokers`) or, when none is given, the embedded one.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error(
        "this build has no embedded broker (feature `embedded-broker`); pass --brokers HOST:PORT"
    )]
    NoEmbeddedBroker,
    #[cfg(feature = "embedded-broker")]
    #[error(transparent)]
    Embedded(#[from] crate::tools::embedded_broker::EmbeddedBrokerError),
}

pub struct BrokerChoice {
    bootstrap_servers: String,
    /// Keeps the embedded broker running; dropping it stops the broker.
    #[cfg(feature = "embedded-broker")]
    embedded: Option<crate::tools::embedded_broker::EmbeddedBroker>,
}

impl BrokerChoice {
    /// `brokers`, or a new embedded broker when `None`.
    pub fn connect_or_start(brokers: Option<&str>) -> Result<BrokerChoice, BrokerError> {
        if let Some(brokers) = brokers {
            return Ok(BrokerChoice {
                bootstrap_servers: brokers.to_owned(),
                #[cfg(feature = "embedded-broker")]
                embedded: None,
            });
        }
        #[cfg(feature = "embedded-broker")]
        {
            let embedded = crate::tools::embedded_broker::EmbeddedBroker::start(1)?;
            Ok(BrokerChoice {
                bootstrap_servers: embedded.bootstrap_servers(),
                embedded: Some(embedded),
            })
        }
        #[cfg(not(feature = "embedded-broker"))]
        Err(BrokerError::NoEmbeddedBroker)
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn is_embedded(&self) -> bool {
        #[cfg(feature = "embedded-broker")]
        {
            self.embedded.is_some()
        }
        #[cfg(not(feature = "embedded-broker"))]
        false
    }
}
