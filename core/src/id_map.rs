//! [`IdMap`]: a map keyed by seller or campaign ids ([`StoredId`]) whose
//! entries can be located once and revisited by [`Slot`] without hashing
//! and probing again.
//!
//! `DecisionCore::process_batch` looks an event's seller and campaign up in
//! its prefetch stages; the later stages and the rules then go straight to
//! the same entries. A slot stays good until the map's membership changes
//! (an insert or a removal, which seller and campaign events and retention
//! make, a few per million events): the map counts those changes and a slot
//! taken before one is ignored, and the id looked up again. The entry a
//! slot reaches is also compared with the id (a few instructions, the key
//! being inline), so a slot of another map, or of a map dropped and made
//! anew, can only cost a lookup. So a slot is only ever a shortcut: what a
//! lookup by id finds is what a slot finds.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable, hash_table::Entry};

use crate::id::{StoredId, ids_equal};

/// Where an entry of an [`IdMap`] was, as of one membership of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    index: usize,
    membership: u64,
}

pub struct IdMap<V> {
    table: HashTable<(StoredId, V)>,
    hasher: DefaultHashBuilder,
    /// Inserts and removals so far: a [`Slot`] taken at another count may
    /// name another entry or none.
    membership: u64,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            membership: 0,
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> IdMap<V> {
    pub fn new() -> IdMap<V> {
        IdMap::default()
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap bytes of the table itself, by capacity (not what the values
    /// own): a slot and a control byte per entry.
    pub fn table_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<(StoredId, V)>() + 1)
    }

    pub fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        self.table
            .reserve(additional, |(k, _)| hasher.hash_one(k.as_str()));
        // Growing moves entries.
        self.membership += 1;
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.table
            .find(self.hash(id), |(k, _)| {
                ids_equal(k.as_bytes(), id.as_bytes())
            })
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        let hash = self.hash(id);
        self.table
            .find_mut(hash, |(k, _)| ids_equal(k.as_bytes(), id.as_bytes()))
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Where `id`'s entry is, for [`IdMap::at`] and [`IdMap::at_mut`].
    pub fn locate(&self, id: &str) -> Option<Slot> {
        self.table
            .find_bucket_index(self.hash(id), |(k, _)| {
                ids_equal(k.as_bytes(), id.as_bytes())
            })
            .map(|index| Slot {
                index,
                membership: self.membership,
            })
    }

    /// Whether `slot` still reaches `id`'s entry.
    #[inline]
    fn holds(&self, slot: Option<Slot>, id: &str) -> Option<usize> {
        let slot = slot.filter(|slot| slot.membership == self.membership)?;
        let (k, _) = self.table.get_bucket(slot.index)?;
        ids_equal(k.as_bytes(), id.as_bytes()).then_some(slot.index)
    }

    /// The value of `id`: at `slot` if the map's membership has not
    /// changed since it was taken and the entry there is `id`'s, else (or
    /// with no slot) by lookup.
    #[inline]
    pub fn at(&self, slot: Option<Slot>, id: &str) -> Option<&V> {
        match self.holds(slot, id) {
            Some(index) => self.table.get_bucket(index).map(|(_, v)| v),
            None => self.get(id),
        }
    }

    /// The value at `slot` if the map's membership has not changed since
    /// it was taken; `None` if it has (a hint's lookup, which needs no id).
    #[inline]
    pub fn at_slot(&self, slot: Slot) -> Option<&V> {
        if slot.membership != self.membership {
            return None;
        }
        self.table.get_bucket(slot.index).map(|(_, v)| v)
    }

    /// [`IdMap::at`], mutably.
    #[inline]
    pub fn at_mut(&mut self, slot: Option<Slot>, id: &str) -> Option<&mut V> {
        match self.holds(slot, id) {
            Some(index) => self.table.get_bucket_mut(index).map(|(_, v)| v),
            None => self.get_mut(id),
        }
    }

    /// `id`'s entry, occupied or not; a caller that fills a vacant one
    /// counts it in `membership`.
    fn entry<'m>(
        table: &'m mut HashTable<(StoredId, V)>,
        hasher: &DefaultHashBuilder,
        id: &str,
    ) -> Entry<'m, (StoredId, V)> {
        table.entry(
            hasher.hash_one(id),
            |(k, _)| ids_equal(k.as_bytes(), id.as_bytes()),
            |(k, _)| hasher.hash_one(k.as_str()),
        )
    }

    /// The value of `id`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, id: &str, make: impl FnOnce() -> V) -> &mut V {
        match IdMap::entry(&mut self.table, &self.hasher, id) {
            Entry::Occupied(entry) => &mut entry.into_mut().1,
            Entry::Vacant(entry) => {
                self.membership += 1;
                &mut entry.insert((StoredId::from(id), make())).into_mut().1
            }
        }
    }

    /// Inserts `value` for `id`, returning the value it replaces.
    pub fn insert(&mut self, id: &str, value: V) -> Option<V> {
        match IdMap::entry(&mut self.table, &self.hasher, id) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(&mut entry.get_mut().1, value)),
            Entry::Vacant(entry) => {
                self.membership += 1;
                entry.insert((StoredId::from(id), value));
                None
            }
        }
    }

    /// Removes `id`'s entry, returning its value.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        let hash = self.hash(id);
        let entry = self
            .table
            .find_entry(hash, |(k, _)| ids_equal(k.as_bytes(), id.as_bytes()))
            .ok()?;
        self.membership += 1;
        let ((_, value), _) = entry.remove();
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&StoredId, &V)> + '_ {
        self.table.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.table.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_find_what_ids_find_until_membership_changes() {
        let mut map: IdMap<u32> = IdMap::new();
        for i in 0..100u32 {
            assert_eq!(map.insert(&format!("s{i}"), i), None);
        }
        assert_eq!(map.insert("s7", 700), Some(7));
        assert_eq!(map.len(), 100);
        let slot = map.locate("s7");
        assert!(slot.is_some());
        assert_eq!(map.at(slot, "s7"), Some(&700));
        assert_eq!(slot.and_then(|slot| map.at_slot(slot)), Some(&700));
        *map.at_mut(slot, "s7").unwrap() += 1;
        assert_eq!(map.get("s7"), Some(&701));
        assert_eq!(map.locate("missing"), None);
        assert_eq!(map.at(None, "missing"), None);

        // After a removal the slot is not trusted: the id is looked up.
        assert_eq!(map.remove("s7"), Some(701));
        assert_eq!(map.remove("s7"), None);
        assert_eq!(map.at(slot, "s7"), None);
        assert_eq!(slot.and_then(|slot| map.at_slot(slot)), None);
        let other = map.locate("s8");
        map.insert("s7", 9);
        assert_eq!(map.at(slot, "s7"), Some(&9));
        assert_eq!(map.at(other, "s8"), Some(&8));
        // Growing moves entries: every old slot is looked up again.
        let before = map.locate("s50");
        map.reserve(10_000);
        for i in 100..5_000u32 {
            map.insert(&format!("s{i}"), i);
        }
        assert_eq!(map.at(before, "s50"), Some(&50));
        assert_eq!(map.at_mut(before, "s50"), Some(&mut 50));
        assert_eq!(map.iter().count(), 5_000);
        assert_eq!(map.values().map(|&v| u64::from(v)).sum::<u64>(), {
            (0..5_000u64).sum::<u64>() - 7 + 9
        });
    }

    #[test]
    fn a_slot_of_another_map_only_costs_a_lookup() {
        let mut a: IdMap<u32> = IdMap::new();
        let mut b: IdMap<u32> = IdMap::new();
        a.insert("x", 1);
        a.insert("y", 2);
        b.insert("y", 20);
        b.insert("x", 10);
        // Same membership count, the same ids in other buckets, or none.
        for id in ["x", "y"] {
            let slot = a.locate(id);
            assert_eq!(b.at(slot, id), b.get(id));
            assert_eq!(b.at(slot, "z"), None);
            let expected = b.get(id).copied();
            assert_eq!(b.at_mut(slot, id).map(|v| *v), expected);
        }
    }

    #[test]
    fn get_or_insert_with_inserts_once() {
        let mut map: IdMap<Vec<u8>> = IdMap::new();
        map.get_or_insert_with("a", Vec::new).push(1);
        map.get_or_insert_with("a", || unreachable!()).push(2);
        assert_eq!(map.get("a"), Some(&vec![1, 2]));
        assert!(map.contains_key("a"));
        assert!(!map.contains_key("b"));
        assert_eq!(map.iter().count(), 1);
    }
}
