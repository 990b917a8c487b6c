//! One partition's state (sellers, campaigns, coupons) and the rules of
//! contract section 3 that read and change it.

pub mod campaign;
pub mod coupon_id;
pub mod coupon_ledger;
pub mod daily_quota;
pub mod holdings;
pub mod partition_state;
pub mod query;
pub mod retention;
pub mod seller;

pub use partition_state::{PartitionState, Ruling, StateStats, UserResult};
