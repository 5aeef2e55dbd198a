//! The one cache of bound instruments: sets bound to their attributes on first use, found
//! again without the SDK's attribute lookup (a SipHash of every key and value), and never more
//! than a limit (past it, callers record unbound into the same series). The HTTP layer's
//! request durations, the generation metrics and the engine metrics all keep theirs here.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

/// Bound sets of type `V` under keys `K` (a model, a status code), several per key when they
/// differ by other attributes (which `matches` tells apart).
pub struct BoundCache<K, V> {
    by_key: RwLock<HashMap<K, Vec<Arc<V>>>>,
    limit: usize,
}

impl<K, V> std::fmt::Debug for BoundCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundCache")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> BoundCache<K, V> {
    /// An empty cache that keeps at most `limit` sets in all.
    pub fn new(limit: usize) -> Self {
        Self {
            by_key: RwLock::default(),
            limit,
        }
    }

    /// `key`'s set that `matches`, if one was bound before.
    pub fn existing<Q>(&self, key: &Q, matches: impl Fn(&V) -> bool) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // A poisoned lock only means a panic elsewhere; the map is still whole.
        let map = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        map.get(key)?.iter().find(|v| matches(v)).map(Arc::clone)
    }

    /// `key`'s set that `matches`, made with `bind` on first use; `None` when the cache is
    /// full.
    pub fn get_or_bind<Q>(
        &self,
        key: &Q,
        matches: impl Fn(&V) -> bool,
        bind: impl FnOnce() -> V,
    ) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(set) = self.existing(key, &matches) {
            return Some(set);
        }
        let mut map = self.by_key.write().unwrap_or_else(|e| e.into_inner());
        // Another caller may have bound it since the read.
        if let Some(set) = map
            .get(key)
            .and_then(|sets| sets.iter().find(|v| matches(v)))
        {
            return Some(Arc::clone(set));
        }
        let total: usize = map.values().map(Vec::len).sum();
        if total >= self.limit {
            return None;
        }
        let set = Arc::new(bind());
        map.entry(key.to_owned())
            .or_default()
            .push(Arc::clone(&set));
        Some(set)
    }

    /// Keys and sets held.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        (map.len(), map.values().map(Vec::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_bound_once_found_by_key_and_match_and_capped() {
        let map: BoundCache<String, u32> = BoundCache::new(2);
        assert!(map.existing("a", |_: &u32| true).is_none());
        let one = map.get_or_bind("a", |v| *v == 1, || 1).expect("bound");
        let again = map.get_or_bind("a", |v| *v == 1, || 99).expect("found");
        assert!(
            Arc::ptr_eq(&one, &again),
            "the first set is found, not bound again"
        );
        assert!(map.get_or_bind("b", |_| true, || 2).is_some());
        assert!(
            map.get_or_bind("c", |_| true, || 3).is_none(),
            "the limit holds"
        );
        assert_eq!(map.existing("a", |v| *v == 1).as_deref(), Some(&1));
    }
}
