//! Last-used time and IP per key, kept in memory and written behind in batches: at most one
//! write per key per flush interval. A crash loses at most one interval of last-used data.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use keygate_domain::{KeyId, Timestamp};
use keygate_store::UsageUpdate;

#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    pending: Mutex<HashMap<KeyId, (Timestamp, IpAddr)>>,
}

impl UsageBuffer {
    pub(crate) fn touch(&self, key: KeyId, at: Timestamp, ip: IpAddr) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (at, ip));
    }

    pub(crate) fn take(&self) -> Vec<UsageUpdate> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        pending.into_iter().map(|(key_id, (at, ip))| UsageUpdate { key_id, at, ip: ip.to_string() }).collect()
    }
}
