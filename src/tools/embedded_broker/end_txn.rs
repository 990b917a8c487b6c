//! The embedded broker's request routes and accept loop, built here rather
//! than by `tansu_broker::broker::Broker::serve`, to add the one route Tansu
//! 0.6 leaves out: EndTxn (KIP-98). Tansu's storage implements ending a
//! transaction (`Storage::txn_end`) and its broker routes every other
//! transactional request (InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit), but `tansu_broker::service::storage::
//! services` has no EndTxn route, so librdkafka reports "EndTxnRequest
//! (KIP-98) not supported by broker" and no transaction can commit or abort.
//!
//! [`serve`] is `Broker::serve` with that route added: the same routes
//! (Tansu's public route builders for storage, group coordinator and
//! SASL handshake, plus [`EndTxnService`]), the same connection layers,
//! and the same periodic `Storage::maintain`. Everything used is public API
//! of the Tansu crates; nothing of them is patched or copied.

use std::io::ErrorKind;
use std::time::{Duration, SystemTime};

use rama::layer::{MapErrLayer, MapStateLayer};
use rama::{Context, Layer as _, Service};
use tansu_broker::Error;
use tansu_broker::coordinator::group::Coordinator;
use tansu_sans_io::{ApiKey, EndTxnRequest, EndTxnResponse};
use tansu_service::{
    BytesFrameLayer, FrameRequestLayer, FrameRouteBuilder, FrameRouteService, TcpBytesLayer,
    TcpContext, TcpContextLayer,
};
use tansu_storage::Storage;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// How often storage maintenance runs (Tansu's default).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);

/// Answers EndTxn by committing or aborting the producer's transaction in
/// storage; the storage's error code (e.g. an unknown producer or a fenced
/// epoch) goes back in the response.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndTxnService;

impl ApiKey for EndTxnService {
    const KEY: i16 = EndTxnRequest::KEY;
}

impl<S> Service<S, EndTxnRequest> for EndTxnService
where
    S: Storage,
{
    type Response = EndTxnResponse;
    type Error = tansu_storage::Error;

    async fn serve(
        &self,
        ctx: Context<S>,
        req: EndTxnRequest,
    ) -> Result<Self::Response, Self::Error> {
        ctx.state()
            .txn_end(
                req.transactional_id.as_str(),
                req.producer_id,
                req.producer_epoch,
                req.committed,
            )
            .await
            .map(|error_code| {
                EndTxnResponse::default()
                    .throttle_time_ms(0)
                    .error_code(error_code.into())
            })
    }
}

/// Adds the EndTxn route to `builder`, in the shape of Tansu's own routes.
fn end_txn<S>(
    builder: FrameRouteBuilder<(), Error>,
    storage: S,
) -> Result<FrameRouteBuilder<(), Error>, Error>
where
    S: Storage,
{
    builder
        .with_route(
            EndTxnRequest::KEY,
            (
                MapErrLayer::new(Error::from),
                MapStateLayer::new(|_| storage),
                FrameRequestLayer::<EndTxnRequest>::new(),
            )
                .into_layer(EndTxnService)
                .boxed(),
        )
        .map_err(Into::into)
}

/// Accepts connections on `listener` and serves each with Tansu's routes
/// plus EndTxn, running storage maintenance periodically, until the
/// runtime shuts down. Fails only if the routes cannot be built.
pub async fn serve<C, S>(
    listener: TcpListener,
    cluster_id: &str,
    coordinator: C,
    storage: S,
) -> Result<(), Error>
where
    C: Coordinator,
    S: Storage,
{
    let routes = tansu_broker::service::storage::services(
        FrameRouteService::<(), Error>::builder(),
        storage.clone(),
    )
    .and_then(|builder| end_txn(builder, storage.clone()))
    .and_then(|builder| tansu_broker::service::coordinator::services(builder, coordinator))
    .and_then(tansu_broker::service::auth::services)
    .and_then(|builder| builder.build().map_err(Error::from))?;
    let service = (
        TcpContextLayer::new(TcpContext::default().cluster_id(Some(cluster_id.to_owned()))),
        TcpBytesLayer::default(),
        BytesFrameLayer::default(),
    )
        .into_layer(routes);

    let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Per-connection failures (e.g. out of file
                        // descriptors): keep listening after a pause.
                        warn!(message = "The embedded broker failed to accept a connection.", error = %e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(message = "TCP_NODELAY not set.", error = %e);
                }
                let service = service.clone();
                tasks.spawn(async move {
                    match service.serve(Context::default(), stream).await {
                        Err(Error::Io(ref io))
                            if matches!(
                                io.kind(),
                                ErrorKind::UnexpectedEof
                                    | ErrorKind::BrokenPipe
                                    | ErrorKind::ConnectionReset
                            ) => {}
                        Err(e) => warn!(message = "An embedded broker connection failed.", error = ?e),
                        Ok(_) => {}
                    }
                });
            }
            _ = maintenance.tick() => {
                let storage = storage.clone();
                tasks.spawn(async move {
                    if let Err(e) = storage.maintain(SystemTime::now()).await {
                        debug!(message = "Embedded broker storage maintenance failed.", error = ?e);
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
