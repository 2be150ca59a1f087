//! The change feed as this process reads it: where it is, and dropping from the caches what other
//! processes changed (polled, or asked for by the listener and by `keygate` commands).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use keygate_domain::{KeyId, TenantId, Timestamp, UserId};
use keygate_store::{ChangeKind, Database};

use super::verifier::Verifier;
use crate::{Keygate, ServiceResult};

/// Where this process is in the change feed.
#[derive(Debug, Default)]
pub(crate) struct FeedCursor {
    last_seq: Option<i64>,
    seen: HashMap<i64, Instant>,
}

/// Changes committed out of sequence order within this window are still caught.
const FEED_WINDOW: Duration = Duration::from_secs(5);

impl Keygate {
    /// Reads the change feed now and drops what it names from the caches, as the periodic poll
    /// does. A process that changed keys, users or tenants (the CLI) asks a running server for
    /// this, so that the server refuses on the very next request what was just disabled.
    pub async fn catch_up(&self) -> ServiceResult<()> {
        let mut feed = self.inner.feed.lock().await;
        let applied = self.inner.verifier.apply_changes(&self.inner.db, &mut feed).await?;
        self.inner.listener.feed_read(&applied);
        Ok(())
    }
}

impl Verifier {
    /// Reads the feed past `cursor` and drops what it names. Returns when each change it applied
    /// was made (the writer's clock), for the lag metric.
    async fn apply_changes(&self, db: &Database, cursor: &mut FeedCursor) -> ServiceResult<Vec<Timestamp>> {
        let now = Instant::now();
        let (last, starting) = match cursor.last_seq {
            Some(seq) => (seq, false),
            None => {
                // A new process has nothing cached yet: start from the end of the feed.
                let latest = db.changes().latest_seq().await?;
                cursor.last_seq = Some(latest);
                (latest, true)
            }
        };
        let mut applied = Vec::new();
        let since = Timestamp::now().plus_millis(-(FEED_WINDOW.as_millis() as i64));
        for change in db.changes().recent(last, since).await? {
            if cursor.seen.insert(change.seq, now).is_some() {
                continue;
            }
            // At the start, the window's changes up to the end of the feed are only marked seen:
            // they were made before this process cached anything (and are no lag of its own).
            if starting && change.seq <= last {
                continue;
            }
            match change.kind {
                ChangeKind::Key => self.forget_key(KeyId(change.entity_id)),
                ChangeKind::User => self.forget_user(UserId(change.entity_id)),
                ChangeKind::Tenant => self.forget_tenant(TenantId(change.entity_id)),
            }
            applied.push(change.at);
            cursor.last_seq = Some(cursor.last_seq.unwrap_or(0).max(change.seq));
        }
        cursor.seen.retain(|_, at| now.saturating_duration_since(*at) < FEED_WINDOW * 2);
        Ok(applied)
    }
}
