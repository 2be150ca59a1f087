//! Keyset continuations behind offset paging ([`PageHints`]): a bounded map from "this listing at
//! this offset" to the id the next page starts after.

use keygate_domain::UnitId;
use keygate_store::Visibility;
use sha2::{Digest, Sha256};

/// Identifies "the same listing at this offset": tenant, unit, view, reach and filter. The filter
/// is held as the SHA-256 of its canonical text, so an entry has a fixed size (no heap) whatever
/// the filter's length: the hints' memory is bounded by [`PageHints::MAX`] × the entry size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HintKey {
    pub(super) tenant: keygate_domain::TenantId,
    pub(super) unit: UnitId,
    pub(super) view: &'static str,
    pub(super) visibility: Visibility,
    pub(super) filter: [u8; 32],
    pub(super) offset: u64,
}

pub(super) fn filter_digest(canonical: &str) -> [u8; 32] {
    Sha256::digest(canonical.as_bytes()).into()
}

/// Keyset continuations behind offset paging: after serving a page, remember the id of its last
/// row under the next page's offset, so that the next page is read with `id > last` instead of
/// skipping `offset` rows again. Paging a view through stays linear instead of quadratic, and a
/// client walking `nextOffset` sees every row exactly once even while rows are inserted or
/// deleted before its position. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct PageHints {
    map: std::sync::Mutex<std::collections::HashMap<HintKey, i64>>,
}

impl PageHints {
    /// Entries kept before the map is cleared: at most ~13 MB (entry and hash-table overhead).
    const MAX: usize = 100_000;

    pub(super) fn get(&self, key: &HintKey) -> Option<i64> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied()
    }

    pub(super) fn put(&self, key: HintKey, last_id: i64) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, last_id);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_paging_hint_owns_no_heap_memory_so_the_hints_are_bounded_in_bytes() {
        // No String inside: whatever filter text arrives, an entry is its fixed size.
        assert!(!std::mem::needs_drop::<super::HintKey>());
        // Key, value (i64) and the hash table's control byte, rounded up, per entry.
        let bound = super::PageHints::MAX * (std::mem::size_of::<super::HintKey>() + 8 + 8);
        assert!(bound <= 16 * 1024 * 1024, "{bound} bytes for a full map of hints");
    }
}
