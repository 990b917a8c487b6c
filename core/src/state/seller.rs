//! [`Seller`]: a seller's quota settings, its daily issuance counts and its
//! campaigns, and the tombstones of campaigns that retention dropped. All
//! state belongs to a seller, which is why a seller's events must all land
//! on one partition.

use hashbrown::HashMap;

use crate::config::SellerDefaults;
use crate::event::SellerUpdate;
use crate::id::{StoredId, stored_id_heap_bytes};
use crate::id_map::IdMap;
use crate::local_day::DayCache;
use crate::state::campaign::{Campaign, Tombstone};
use crate::state::daily_quota::DailyQuota;
use crate::zone::Zone;

/// A seller's quota settings (contract section 3, `seller`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellerSettings {
    pub daily_issue_limit: u64,
    pub max_recipients: u64,
    pub timezone: Zone,
}

impl From<SellerDefaults> for SellerSettings {
    fn from(d: SellerDefaults) -> Self {
        SellerSettings {
            daily_issue_limit: d.daily_issue_limit,
            max_recipients: d.max_recipients,
            timezone: d.timezone,
        }
    }
}

impl SellerSettings {
    /// Applies a `seller` event: given fields replace, omitted ones stay.
    pub fn apply(&mut self, update: &SellerUpdate) {
        if let Some(v) = update.daily_issue_limit {
            self.daily_issue_limit = v;
        }
        if let Some(v) = update.max_recipients {
            self.max_recipients = v;
        }
        if let Some(tz) = update.timezone {
            self.timezone = tz;
        }
    }
}

#[derive(Debug)]
pub struct Seller {
    pub settings: SellerSettings,
    pub daily: DailyQuota,
    /// Boxed, so that the table's slots are small (id inline, a pointer)
    /// and stay in cache: a lookup then misses once, on the campaign itself.
    pub campaigns: IdMap<Box<Campaign>>,
    /// Campaigns dropped by retention, by id: a campaign id is in at most
    /// one of `campaigns` and `evicted`. Kept for good (about 20 bytes plus
    /// the id each), so that a re-created campaign never reuses a serial.
    pub evicted: HashMap<StoredId, Tombstone>,
    /// The local day of the last `issue`, with the instants it spans:
    /// derived from the zone, never stored in a snapshot.
    pub day_cache: DayCache,
}

impl Seller {
    /// Starts fetching the lines an `issue`, `redeem` or `release` reads
    /// first: the seller's settings, day cache and campaigns table.
    pub fn prefetch(&self) {
        crate::prefetch::prefetch(&self.settings);
        crate::prefetch::prefetch(&self.day_cache);
        crate::prefetch::prefetch(&self.campaigns);
    }

    pub fn new(settings: SellerSettings) -> Seller {
        Seller {
            settings,
            daily: DailyQuota::default(),
            campaigns: IdMap::new(),
            evicted: HashMap::new(),
            day_cache: DayCache::new(settings.timezone),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.daily.heap_bytes()
            + self.campaigns.table_bytes()
            + self
                .campaigns
                .iter()
                .map(|(id, c)| {
                    stored_id_heap_bytes(id) + std::mem::size_of::<Campaign>() + c.heap_bytes()
                })
                .sum::<usize>()
            + self.evicted.capacity() * (std::mem::size_of::<(StoredId, Tombstone)>() + 1)
            + self.evicted.keys().map(stored_id_heap_bytes).sum::<usize>()
    }
}
