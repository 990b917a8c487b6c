//! [`PartitionState`]: everything one partition knows, and the rules of
//! contract section 3 applied to a valid, non-duplicate event.
//!
//! It is owned by exactly one worker at a time and is plain data: no locks,
//! no clock (time is the event's `ts`), no I/O. Given the same events in the
//! same order it reaches the same state and rulings.
//!
//! It also applies state retention ([`PartitionState::advance`], see
//! `state::retention`): campaigns whose deadline the watermark has passed
//! are dropped, leaving a [`Tombstone`](crate::state::campaign::Tombstone)
//! with their seller; an `issue` on a local day that ended at or before
//! the retention horizon is refused, and the counts of such days are
//! forgotten (contract section 8).
//!
//! Money is exact (contract section 7): the discount spent is a `u128`, which
//! holds the sum of 2^53 discounts of up to 2^53-1 cents each (every coupon a
//! campaign can ever number), so it neither wraps nor saturates.

use crate::config::SellerDefaults;
use crate::event::{
    Body, CampaignUpsert, Event, IssueRequest, RedeemRequest, ReleaseRequest, SellerUpdate,
};
use crate::id::{StoredId, stored_id_heap_bytes};
use crate::id_map::{IdMap, Slot};
use crate::intern::Interner;
use crate::local_day::day_ended_by;
use crate::prefetch::prefetch;
use crate::reason::{Outcome, Rejection};
use crate::state::campaign::Campaign;
use crate::state::coupon_id::parse_coupon_id;
use crate::state::coupon_ledger::{Coupon, Redemption};
use crate::state::retention::RetentionIndex;
use crate::state::seller::{Seller, SellerSettings};

/// The stages of [`PartitionState::prefetch`], in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchStage {
    /// The user and order ids' index lines; the seller's campaigns,
    /// settings and day cache.
    First,
    /// The ids' slots; the campaign's coupon ledger; an issue's seller's
    /// newest daily count.
    Second,
    /// The coupon a redeem or release names; the holdings of an issue's
    /// users, a user new to the partition at the handle it will get, and
    /// the campaign's newest coupon, beside which the issue writes.
    Third,
}

/// Where [`PartitionState::prefetch`] found an event's seller and
/// campaign, for its later stages and [`PartitionState::apply`] to go
/// straight there. Only a shortcut: a slot the state's changes have made
/// stale is ignored and the id looked up again (see `id_map`), and the
/// default, no slots, always looks ids up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Located {
    seller: Option<Slot>,
    campaign: Option<Slot>,
    /// The serial of the coupon a redeem or release names.
    serial: Option<u64>,
    /// The interners' hashes of the first `hashed` user and order ids the
    /// event names, in the order of `PartitionState::for_each_id`: hashed
    /// once in the first pass, used by the later ones and the rules.
    id_hashes: [u64; IDS_HASHED],
    hashed: u8,
}

/// Ids whose hashes a [`Located`] keeps: every id of a redeem (2) or
/// release (1), an issue's first 4 recipients (most issues name 1 to 3).
const IDS_HASHED: usize = 4;

impl Located {
    /// The hash in `interner` of `id`, the `i`th id the event names.
    #[inline]
    fn id_hash(&self, i: usize, interner: &Interner, id: &str) -> u64 {
        if i < usize::from(self.hashed) {
            debug_assert_eq!(self.id_hashes[i], interner.hash(id));
            self.id_hashes[i]
        } else {
            interner.hash(id)
        }
    }
}

/// One recipient's result in an `issue` decision, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserResult {
    Issued { serial: u64, expires_at: u64 },
    Rejected(Rejection),
}

/// What the rules decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    /// A `seller` or `campaign` event took effect.
    Applied,
    /// An `issue` event; the per-user results are in
    /// [`PartitionState::issue_results`]. `reason` is set when the whole
    /// request was rejected by a request check.
    Issue {
        outcome: Outcome,
        reason: Option<Rejection>,
    },
    Redeemed {
        discount_cents: u64,
        duplicate: bool,
    },
    Released {
        discount_cents: u64,
    },
    /// A `redeem` or `release` was rejected.
    Rejected(Rejection),
}

/// Sizes of the state, for metrics and memory accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateStats {
    pub sellers: usize,
    pub campaigns: usize,
    /// Tombstones of campaigns dropped by retention.
    pub evicted_campaigns: usize,
    /// Coupons held (not those of dropped campaigns).
    pub coupons: u64,
    pub redeemed_coupons: u64,
    pub users: usize,
    pub orders: usize,
    /// Heap bytes held by the state, by capacity.
    pub heap_bytes: usize,
}

pub struct PartitionState {
    defaults: SellerSettings,
    /// Boxed, so that the table's slots are small (id inline, a pointer)
    /// and stay in cache: a lookup then misses once, on the seller itself.
    sellers: IdMap<Box<Seller>>,
    users: Interner,
    orders: Interner,
    /// Campaign deadlines; empty with retention off.
    retention: RetentionIndex,
    /// The partition watermark as of the last [`PartitionState::advance`]
    /// (0 if never called, which keeps every daily count).
    watermark: u64,
    /// Reused across `issue` events so a decision allocates nothing.
    issue_results: Vec<UserResult>,
}

/// Summarises rather than dumps: a partition can hold tens of millions of
/// coupons.
impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("stats", &self.stats())
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl PartitionState {
    /// A state that keeps everything (retention off).
    pub fn new(defaults: SellerDefaults) -> PartitionState {
        PartitionState::with_retention(defaults, 0)
    }

    /// A state that drops campaigns `retention_ms` after their last
    /// relevant moment (0: never).
    pub fn with_retention(defaults: SellerDefaults, retention_ms: u64) -> PartitionState {
        PartitionState {
            defaults: defaults.into(),
            sellers: IdMap::new(),
            users: Interner::new(),
            orders: Interner::new(),
            retention: RetentionIndex::new(retention_ms),
            watermark: 0,
            issue_results: Vec::new(),
        }
    }

    /// A state restored from a snapshot. `defaults` are the settings a
    /// seller first named by a later event starts with; the interners'
    /// handles must be the ones the sellers' coupons refer to. The
    /// retention index is rebuilt from the campaigns.
    pub(crate) fn restore(
        defaults: SellerDefaults,
        retention_ms: u64,
        watermark: u64,
        sellers: IdMap<Box<Seller>>,
        users: Interner,
        orders: Interner,
    ) -> PartitionState {
        let mut retention = RetentionIndex::new(retention_ms);
        for (seller_id, seller) in sellers.iter() {
            for (campaign_id, campaign) in seller.campaigns.iter() {
                retention.track(seller_id, campaign_id, None, campaign.last_relevant_ts());
            }
        }
        PartitionState {
            defaults: defaults.into(),
            sellers,
            users,
            orders,
            retention,
            watermark,
            issue_results: Vec::new(),
        }
    }

    /// Moves the state to the partition watermark `watermark` and drops
    /// every campaign whose deadline lies behind it, leaving a tombstone.
    /// Returns how many were dropped. Costs one comparison unless a
    /// deadline has passed.
    #[inline]
    pub fn advance(&mut self, watermark: u64) -> u32 {
        self.watermark = watermark;
        if self.retention.is_due(watermark) {
            self.evict_due()
        } else {
            0
        }
    }

    #[cold]
    fn evict_due(&mut self) -> u32 {
        let mut evicted = 0;
        while let Some((seller_id, campaign_id)) = self.retention.pop_due(self.watermark) {
            let Some(seller) = self.sellers.get_mut(&seller_id) else {
                debug_assert!(false, "indexed campaign of an unknown seller");
                continue;
            };
            if let Some(campaign) = seller.campaigns.remove(&campaign_id) {
                seller
                    .evicted
                    .insert(StoredId::from(&*campaign_id), campaign.tombstone());
                evicted += 1;
            }
        }
        evicted
    }

    /// Every seller with its id, in no particular order (for snapshots).
    pub(crate) fn sellers(&self) -> impl Iterator<Item = (&str, &Seller)> + '_ {
        self.sellers.iter().map(|(id, seller)| (&**id, &**seller))
    }

    /// The interned user ids, whose handles coupons hold.
    pub(crate) fn users(&self) -> &Interner {
        &self.users
    }

    /// The interned order ids, whose handles redemptions hold.
    pub(crate) fn orders(&self) -> &Interner {
        &self.orders
    }

    /// Applies one valid, non-duplicate event; `located` is what
    /// [`PartitionState::prefetch`] found of it, or the default.
    pub fn apply(&mut self, event: &Event<'_>, located: &Located) -> Ruling {
        match &event.body {
            Body::Seller(update) => self.update_seller(&event.seller_id, update),
            Body::Campaign(upsert) => self.upsert_campaign(&event.seller_id, upsert),
            Body::Issue(request) => self.issue(&event.seller_id, event.ts, request, located),
            Body::Redeem(request) => self.redeem(&event.seller_id, event.ts, request, located),
            Body::Release(request) => self.release(&event.seller_id, request, located),
        }
    }

    /// Starts fetching into cache, without waiting, what applying `event`
    /// will read at `stage` of its lookups: each stage reads what the
    /// stage before fetched and fetches the next level, and records in
    /// `located` (which the first stage starts afresh) where it found the
    /// seller and campaign and the ids' hashes, so that later
    /// stages and [`PartitionState::apply`] do not look them up again. A
    /// hint only: the state and every ruling stay as they are.
    /// `DecisionCore::process_batch` runs the stages of several events at
    /// once, so their fetches overlap.
    pub fn prefetch(&self, event: &Event<'_>, stage: PrefetchStage, located: &mut Located) {
        match stage {
            PrefetchStage::First => {
                *located = Located::default();
                self.for_each_id(event, |interner, id, i| {
                    let hash = interner.hash(id);
                    if i < IDS_HASHED {
                        located.id_hashes[i] = hash;
                        located.hashed = (i + 1) as u8;
                    }
                    interner.prefetch_index(hash);
                });
                if matches!(
                    event.body,
                    Body::Issue(_) | Body::Redeem(_) | Body::Release(_)
                ) {
                    located.seller = self.sellers.locate(&event.seller_id);
                    if let Some(seller) = located.seller.and_then(|s| self.sellers.at_slot(s)) {
                        seller.prefetch();
                    }
                }
            }
            PrefetchStage::Second => {
                self.for_each_id(event, |interner, id, i| {
                    interner.prefetch_slot(located.id_hash(i, interner, id));
                });
                let seller = located.seller.and_then(|s| self.sellers.at_slot(s));
                if let Some(seller) = seller
                    && let Body::Issue(_) = event.body
                {
                    seller.daily.prefetch();
                }
                if let Some(seller) = seller
                    && let Some((campaign_id, serial)) = named_campaign(event)
                {
                    located.campaign = seller.campaigns.locate(campaign_id);
                    located.serial = serial;
                    if let Some(campaign) =
                        located.campaign.and_then(|c| seller.campaigns.at_slot(c))
                    {
                        prefetch(&campaign.coupons);
                    }
                }
            }
            PrefetchStage::Third => {
                let Some(campaign) =
                    located
                        .seller
                        .zip(located.campaign)
                        .and_then(|(seller, campaign)| {
                            self.sellers.at_slot(seller)?.campaigns.at_slot(campaign)
                        })
                else {
                    return;
                };
                match &event.body {
                    Body::Issue(request) => {
                        campaign.coupons.prefetch_newest();
                        // The ids' slots were fetched by the stage before.
                        // A user new to the partition gets the next
                        // handle when the rules intern it, and the
                        // holdings then read that handle's line too: the
                        // handles the new users will get, in order, are
                        // fetched for. `DecisionCore::process_batch` runs
                        // this stage after deciding every earlier event,
                        // so only this event's own users intern in between
                        // (a guess that turns out wrong, say for a request
                        // the rules reject, costs a fetch, never a ruling).
                        let mut next_new = self.users.len();
                        for (i, user_id) in request.user_ids.iter().enumerate() {
                            let hash = located.id_hash(i, &self.users, user_id);
                            match self.users.get_hashed(user_id, hash) {
                                Some(user) => campaign.prefetch_holding(user),
                                None => {
                                    if let Ok(user) = u32::try_from(next_new) {
                                        campaign.prefetch_holding(user);
                                    }
                                    next_new += 1;
                                }
                            }
                        }
                    }
                    _ => {
                        if let Some(coupon) = located
                            .serial
                            .and_then(|serial| campaign.coupons.get(serial))
                        {
                            prefetch(coupon);
                        }
                    }
                }
            }
        }
    }

    /// Calls `f` with the interner, each user or order id that applying
    /// `event` looks up in it, and the id's place in that list (the index
    /// of its hash in [`Located`]).
    fn for_each_id(&self, event: &Event<'_>, mut f: impl FnMut(&Interner, &str, usize)) {
        match &event.body {
            Body::Issue(request) => request
                .user_ids
                .iter()
                .enumerate()
                .for_each(|(i, user)| f(&self.users, user, i)),
            Body::Redeem(request) => {
                f(&self.users, &request.user_id, 0);
                f(&self.orders, &request.order_id, 1);
            }
            Body::Release(request) => f(&self.orders, &request.order_id, 0),
            Body::Seller(_) | Body::Campaign(_) => {}
        }
    }

    /// Per-recipient results of the last `issue` ruling.
    pub fn issue_results(&self) -> &[UserResult] {
        &self.issue_results
    }

    fn seller_entry(&mut self, seller_id: &str) -> &mut Seller {
        // Seller and campaign events are rare; the key allocation is cheap.
        let defaults = self.defaults;
        self.sellers
            .get_or_insert_with(seller_id, || Box::new(Seller::new(defaults)))
    }

    fn update_seller(&mut self, seller_id: &str, update: &SellerUpdate) -> Ruling {
        self.seller_entry(seller_id).settings.apply(update);
        Ruling::Applied
    }

    fn upsert_campaign(&mut self, seller_id: &str, upsert: &CampaignUpsert<'_>) -> Ruling {
        let campaign_id = upsert.campaign_id.as_ref();
        let seller = self.seller_entry(seller_id);
        let (previous, last_relevant) = match seller.campaigns.get_mut(campaign_id) {
            // Counters survive a new definition.
            Some(campaign) => {
                let previous = campaign.last_relevant_ts();
                campaign.definition = upsert.definition;
                (Some(previous), campaign.last_relevant_ts())
            }
            None => {
                // A campaign dropped by retention comes back with its
                // numbering and budgets, never reusing a serial.
                let campaign = match seller.evicted.remove(campaign_id) {
                    Some(tombstone) => Campaign::resume(upsert.definition, tombstone),
                    None => Campaign::new(upsert.definition),
                };
                let last_relevant = campaign.last_relevant_ts();
                seller.campaigns.insert(campaign_id, Box::new(campaign));
                (None, last_relevant)
            }
        };
        self.retention
            .track(seller_id, campaign_id, previous, last_relevant);
        Ruling::Applied
    }

    fn issue(
        &mut self,
        seller_id: &str,
        ts: u64,
        request: &IssueRequest<'_>,
        located: &Located,
    ) -> Ruling {
        self.issue_results.clear();
        let rejected = |reason| Ruling::Issue {
            outcome: Outcome::Rejected,
            reason: Some(reason),
        };
        let Some(seller) = self.sellers.at_mut(located.seller, seller_id) else {
            return rejected(Rejection::UnknownCampaign);
        };
        let Some(campaign) = seller
            .campaigns
            .at_mut(located.campaign, &request.campaign_id)
        else {
            return rejected(Rejection::UnknownCampaign);
        };
        let settings = seller.settings;
        if request.user_ids.len() as u64 > settings.max_recipients {
            return rejected(Rejection::TooManyRecipients);
        }
        let def = campaign.definition;
        if !def.active {
            return rejected(Rejection::CampaignInactive);
        }
        if ts < def.issue_from || ts > def.issue_until {
            return rejected(Rejection::OutsideIssueWindow);
        }

        let zone = settings.timezone;
        let span = seller.day_cache.span(zone, ts);
        let day = span.day;
        // Contract section 8: a day that ended at or before the horizon, in
        // the zone in force now, is refused whether or not it had a count.
        // `ts` is on the day, so the day has not ended before `ts`: only a
        // late event needs a look at the horizon.
        let horizon = self.retention.horizon(self.watermark);
        let day_forgotten = horizon.is_some_and(|h| ts < h && day_ended_by(zone, day, h))
            // A count an older build dropped cannot be checked.
            || seller.daily.count_lost(day);
        if let Some(h) = horizon {
            seller.daily.forget_ended(h);
        }
        let mut issued_today = seller.daily.issued_on(day);
        // Exact: ts + ttl overflows u64 only past any valid_until.
        let expires_at = match def.ttl_ms.and_then(|ttl| ts.checked_add(ttl)) {
            Some(end) => def.valid_until.min(end),
            None => def.valid_until,
        };
        let mut issued = 0usize;
        for (i, user_id) in request.user_ids.iter().enumerate() {
            let result = if day_forgotten || issued_today >= settings.daily_issue_limit {
                UserResult::Rejected(Rejection::DailyQuotaExhausted)
            } else if campaign.issued() >= def.budget || !campaign.coupons.has_room() {
                // A full ledger (2^32-2 coupons) is a capacity limit of the
                // process; it stops issuance like an exhausted budget.
                UserResult::Rejected(Rejection::BudgetExhausted)
            } else {
                // One hash and probe of the user id serve the limit check
                // and the interning; one probe of the holdings checks the
                // limit and records the coupon.
                let probe = self
                    .users
                    .probe_hashed(user_id, located.id_hash(i, &self.users, user_id));
                let holder = match probe.handle {
                    Some(user) => campaign.add_holding_within_limit(user).then_some(Ok(user)),
                    // A user the partition never issued to holds nothing.
                    None if def.per_user_limit == 0 => None,
                    None => Some(self.users.intern_probed(user_id, probe).inspect(|&user| {
                        debug_assert_eq!(campaign.held_by(Some(user)), 0);
                        campaign.add_holding(user);
                    })),
                };
                match holder {
                    None => UserResult::Rejected(Rejection::UserLimitReached),
                    Some(Ok(user)) => {
                        // Never beyond the indexed deadline: expires_at is
                        // at most the current valid_until.
                        debug_assert!(expires_at <= campaign.last_relevant_ts());
                        let serial = campaign.coupons.issue(user, expires_at);
                        issued_today += 1;
                        issued += 1;
                        UserResult::Issued { serial, expires_at }
                    }
                    // Only reachable with 2^32 distinct users in a partition.
                    Some(Err(_)) => UserResult::Rejected(Rejection::BudgetExhausted),
                }
            };
            self.issue_results.push(result);
        }
        if issued > 0 {
            seller.daily.set_issued(day, issued_today);
        }
        debug_assert!(issued_today <= settings.daily_issue_limit.max(seller.daily.issued_on(day)));
        debug_assert!(campaign.issued() <= def.budget || issued == 0);
        let outcome = if issued == request.user_ids.len() {
            Outcome::Issued
        } else if issued > 0 {
            Outcome::Partial
        } else {
            Outcome::Rejected
        };
        Ruling::Issue {
            outcome,
            reason: None,
        }
    }

    fn redeem(
        &mut self,
        seller_id: &str,
        ts: u64,
        request: &RedeemRequest<'_>,
        located: &Located,
    ) -> Ruling {
        let Some((campaign, serial, coupon)) =
            issued_coupon(&mut self.sellers, seller_id, &request.coupon_id, located)
        else {
            return Ruling::Rejected(Rejection::UnknownCoupon);
        };
        let user_hash = located.id_hash(0, &self.users, &request.user_id);
        if self.users.get_hashed(&request.user_id, user_hash) != Some(coupon.holder) {
            return Ruling::Rejected(Rejection::NotOwner);
        }
        let order_hash = located.id_hash(1, &self.orders, &request.order_id);
        if let Some(redemption) = campaign.coupons.redemption(&coupon) {
            if self.orders.get_hashed(&request.order_id, order_hash) == Some(redemption.order) {
                return Ruling::Redeemed {
                    discount_cents: redemption.discount_cents,
                    duplicate: true,
                };
            }
            return Ruling::Rejected(Rejection::AlreadyRedeemed);
        }
        let def = campaign.definition;
        if !def.active {
            return Ruling::Rejected(Rejection::CampaignInactive);
        }
        if ts < def.valid_from {
            return Ruling::Rejected(Rejection::NotYetValid);
        }
        if ts > coupon.expires_at {
            return Ruling::Rejected(Rejection::Expired);
        }
        if request.order_cents < def.min_order_cents {
            return Ruling::Rejected(Rejection::BelowMinimum);
        }
        let discount_cents = def.discount_cents.min(request.order_cents);
        // Exact (see the module doc); a sum beyond u128, which no sequence
        // of events reaches, would exceed any budget.
        let Some(spent) = campaign
            .discount_spent_cents
            .checked_add(u128::from(discount_cents))
        else {
            return Ruling::Rejected(Rejection::DiscountBudgetExhausted);
        };
        if let Some(budget) = def.discount_budget_cents
            && spent > u128::from(budget)
        {
            return Ruling::Rejected(Rejection::DiscountBudgetExhausted);
        }
        let probe = self.orders.probe_hashed(&request.order_id, order_hash);
        let Ok(order) = self.orders.intern_probed(&request.order_id, probe) else {
            // Only reachable with 2^32 distinct orders in a partition; refuse
            // rather than record a redemption that could not be released.
            return Ruling::Rejected(Rejection::DiscountBudgetExhausted);
        };
        let redeemed = campaign.coupons.redeem(
            serial,
            Redemption {
                order,
                discount_cents,
            },
        );
        debug_assert!(redeemed, "coupon was checked unredeemed above");
        campaign.discount_spent_cents = spent;
        Ruling::Redeemed {
            discount_cents,
            duplicate: false,
        }
    }

    fn release(
        &mut self,
        seller_id: &str,
        request: &ReleaseRequest<'_>,
        located: &Located,
    ) -> Ruling {
        let Some((campaign, serial, coupon)) =
            issued_coupon(&mut self.sellers, seller_id, &request.coupon_id, located)
        else {
            return Ruling::Rejected(Rejection::UnknownCoupon);
        };
        let Some(redemption) = campaign.coupons.redemption(&coupon) else {
            return Ruling::Rejected(Rejection::NotRedeemed);
        };
        let order_hash = located.id_hash(0, &self.orders, &request.order_id);
        if self.orders.get_hashed(&request.order_id, order_hash) != Some(redemption.order) {
            return Ruling::Rejected(Rejection::OrderMismatch);
        }
        campaign.coupons.release(serial);
        // The spent sum includes every redeemed coupon's discount (a
        // snapshot is checked for that when read), so this never reaches
        // the floor: the subtraction is exact.
        let given_back = u128::from(redemption.discount_cents);
        debug_assert!(campaign.discount_spent_cents >= given_back);
        campaign.discount_spent_cents = campaign.discount_spent_cents.saturating_sub(given_back);
        Ruling::Released {
            discount_cents: redemption.discount_cents,
        }
    }

    /// A campaign, for queries and tests.
    pub fn campaign(&self, seller_id: &str, campaign_id: &str) -> Option<&Campaign> {
        self.sellers
            .get(seller_id)?
            .campaigns
            .get(campaign_id)
            .map(|c| &**c)
    }

    /// The retention setting (ms; 0: off).
    pub fn retention_ms(&self) -> u64 {
        self.retention.retention_ms()
    }

    /// A seller, for queries and tests.
    pub fn seller(&self, seller_id: &str) -> Option<&Seller> {
        self.sellers.get(seller_id).map(|s| &**s)
    }

    /// The id behind an interned user handle.
    pub fn user_id(&self, user: u32) -> &str {
        self.users.resolve(user)
    }

    /// The id behind an interned order handle.
    pub fn order_id(&self, order: u32) -> &str {
        self.orders.resolve(order)
    }

    /// Sizes of the state.
    pub fn stats(&self) -> StateStats {
        let mut stats = StateStats {
            sellers: self.sellers.len(),
            users: self.users.len(),
            orders: self.orders.len(),
            heap_bytes: self.users.heap_bytes()
                + self.orders.heap_bytes()
                + self.retention.heap_bytes()
                + self.sellers.table_bytes(),
            ..StateStats::default()
        };
        for (id, seller) in self.sellers.iter() {
            stats.heap_bytes +=
                stored_id_heap_bytes(id) + std::mem::size_of::<Seller>() + seller.heap_bytes();
            stats.campaigns += seller.campaigns.len();
            stats.evicted_campaigns += seller.evicted.len();
            for campaign in seller.campaigns.values() {
                stats.coupons += campaign.coupons.held();
                stats.redeemed_coupons += campaign.coupons.redeemed_count() as u64;
            }
        }
        stats
    }
}

/// The campaign `event` names, and the serial of the coupon it names (a
/// redeem or release whose coupon id parses).
fn named_campaign<'e>(event: &'e Event<'_>) -> Option<(&'e str, Option<u64>)> {
    match &event.body {
        Body::Issue(request) => Some((&request.campaign_id, None)),
        Body::Redeem(RedeemRequest { coupon_id, .. })
        | Body::Release(ReleaseRequest { coupon_id, .. }) => {
            parse_coupon_id(coupon_id).map(|(campaign_id, serial)| (campaign_id, Some(serial)))
        }
        Body::Seller(_) | Body::Campaign(_) => None,
    }
}

/// The campaign, serial and coupon that `coupon_id` names among
/// `seller_id`'s campaigns, if that coupon was issued and is still held:
/// the lookup every redeem and release starts with.
fn issued_coupon<'s>(
    sellers: &'s mut IdMap<Box<Seller>>,
    seller_id: &str,
    coupon_id: &str,
    located: &Located,
) -> Option<(&'s mut Campaign, u64, Coupon)> {
    let (campaign_id, serial) = parse_coupon_id(coupon_id)?;
    let campaign = sellers
        .at_mut(located.seller, seller_id)?
        .campaigns
        .at_mut(located.campaign, campaign_id)?;
    let coupon = *campaign.coupons.get(serial)?;
    Some((campaign, serial, coupon))
}
