//! Bound instrument sets kept per model: made on first use, found again without the SDK's
//! attribute lookup, and never more than a limit (past it, callers record unbound into the same
//! series). Shared by the generation metrics and the engine metrics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Bound sets of type `V`, several per model when they differ by other attributes.
pub(crate) struct BoundMap<V> {
    by_model: RwLock<HashMap<String, Vec<Arc<V>>>>,
    limit: usize,
}

impl<V> std::fmt::Debug for BoundMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundMap")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<V> BoundMap<V> {
    /// An empty map that keeps at most `limit` sets in all.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            by_model: RwLock::default(),
            limit,
        }
    }

    /// `model`'s set that `matches`, if one was bound before.
    pub(crate) fn existing(&self, model: &str, matches: impl Fn(&V) -> bool) -> Option<Arc<V>> {
        // A poisoned lock only means a panic elsewhere; the map is still whole.
        let map = self.by_model.read().unwrap_or_else(|e| e.into_inner());
        map.get(model)?.iter().find(|v| matches(v)).map(Arc::clone)
    }

    /// `model`'s set that `matches`, made with `bind` on first use; `None` when the map is
    /// full.
    pub(crate) fn get_or_bind(
        &self,
        model: &str,
        matches: impl Fn(&V) -> bool,
        bind: impl FnOnce() -> V,
    ) -> Option<Arc<V>> {
        if let Some(set) = self.existing(model, &matches) {
            return Some(set);
        }
        let mut map = self.by_model.write().unwrap_or_else(|e| e.into_inner());
        // Another caller may have bound it since the read.
        if let Some(set) = map
            .get(model)
            .and_then(|sets| sets.iter().find(|v| matches(v)))
        {
            return Some(Arc::clone(set));
        }
        let total: usize = map.values().map(Vec::len).sum();
        if total >= self.limit {
            return None;
        }
        let set = Arc::new(bind());
        map.entry(model.to_owned())
            .or_default()
            .push(Arc::clone(&set));
        Some(set)
    }

    /// Models and sets held.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let map = self.by_model.read().unwrap_or_else(|e| e.into_inner());
        (map.len(), map.values().map(Vec::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_bound_once_found_by_model_and_match_and_capped() {
        let map = BoundMap::new(2);
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
