//! The hashers of the verification caches: keys that are already hashes (SHA-256 digests) or
//! integer ids from the database need no second hash.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

/// A SHA-256 digest hashes to its own first eight bytes: no need to hash it again. Integer ids
/// (written with `write_i64`/`write_u64`) are spread with a multiplication (Fibonacci hashing);
/// they come from the database, not from callers, so flooding is not a concern.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by integer ids, hashed with [`PassThrough`].
pub(super) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<PassThrough>>;
