//! [`LiveState`]: the processor's partition table as the HTTP state
//! queries see it. A query for a partition this instance does not own, or
//! is still restoring, answers at once from the phase map; only a query
//! for an active partition takes that partition table's lock, which the
//! loop holds for one batch at a time.

use std::sync::Arc;

use crate::kafka::processor::partition::{PartitionTable, Phase};
use crate::ops::http::{QueryAnswer, StateQueries};
use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::partitioner::partition_for;
use coupon_stream_core::state::query::{CampaignView, CouponView, campaign_view, coupon_view};

/// The processor's partition table, shared with the HTTP state queries.
#[derive(Clone)]
pub struct LiveState {
    pub(super) table: Arc<PartitionTable>,
}

impl LiveState {
    fn lookup<T>(
        &self,
        seller_id: &str,
        view: impl FnOnce(&DecisionCore) -> Option<T>,
    ) -> QueryAnswer<T> {
        let Some(count) = self.table.partition_count() else {
            return QueryAnswer::Unavailable("the input topic's partition count is not known yet");
        };
        let partition = partition_for(seller_id.as_bytes(), count) as i32;
        match self.table.phase(partition) {
            None => QueryAnswer::NotOwned { partition },
            Some(Phase::Restoring) => QueryAnswer::Restoring { partition },
            Some(Phase::Active) => match self.table.active().get(&partition) {
                // Revoked between the two looks.
                None => QueryAnswer::NotOwned { partition },
                Some(state) => match view(&state.core) {
                    Some(found) => QueryAnswer::Found(found),
                    None => QueryAnswer::NotFound { partition },
                },
            },
        }
    }
}

impl StateQueries for LiveState {
    fn campaign(&self, seller_id: &str, campaign_id: &str) -> QueryAnswer<CampaignView> {
        self.lookup(seller_id, |core| {
            campaign_view(core.state(), core.watermark(), seller_id, campaign_id)
        })
    }

    fn coupon(&self, seller_id: &str, coupon_id: &str) -> QueryAnswer<CouponView> {
        self.lookup(seller_id, |core| {
            coupon_view(core.state(), core.watermark(), seller_id, coupon_id)
        })
    }
}
