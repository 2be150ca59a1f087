//! Counters the verification path adds to on every call (cache hits, accepted calls), for
//! `/metrics`. One shared atomic would be one cache line that every worker thread pulls to its
//! own core on every call; here a counter is a few cache-line-sized stripes and each thread adds
//! to the stripe its own address picks: one relaxed add, no lock, no allocation. Reading sums the
//! stripes (a scrape, not the hot path). No other state lives here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes per counter: a power of two, more than the worker threads of a small server.
const STRIPES: usize = 8;

/// One stripe per cache line, so that two threads' adds never share a line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU64);

/// A monotonic count, added to from any thread.
#[derive(Debug, Default)]
pub(crate) struct Striped {
    stripes: [Stripe; STRIPES],
}

thread_local! {
    /// Only its address is used: every thread has its own, so it tells threads apart without a
    /// lookup or a registration (a constant with no destructor costs nothing to reach).
    static HERE: u8 = const { 0 };
}

/// The stripe of the calling thread: its thread-local's address, spread by a multiplication
/// (thread-local blocks lie at similar offsets of differently placed regions).
fn stripe_of_this_thread() -> usize {
    let address = HERE.with(|here| std::ptr::from_ref(here).addr()) as u64;
    (address.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - STRIPES.trailing_zeros())) as usize
}

impl Striped {
    /// Adds one.
    #[inline]
    pub(crate) fn add_one(&self) {
        self.stripes[stripe_of_this_thread() % STRIPES].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far. Adds that race with the read may or may not be in it; none is lost.
    pub(crate) fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn adds_from_many_threads_are_all_counted() {
        let counter = Arc::new(Striped::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || (0..10_000).for_each(|_| counter.add_one()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("thread"));
        assert_eq!(counter.get(), 120_000);
    }

    #[test]
    fn each_stripe_has_a_cache_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Stripe>(), 64);
        assert_eq!(std::mem::size_of::<Striped>(), 64 * STRIPES);
    }
}
