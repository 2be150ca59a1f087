//! The listening side of pushed invalidation (PostgreSQL only): a dedicated connection, not one
//! of the query pool's, subscribed to the change channel that the `changes` table's trigger
//! notifies (migration 0010). It must reach PostgreSQL directly or through a session-mode
//! pooler: a transaction-mode pooler (PgBouncer `pool_mode = transaction`) drops `LISTEN`.

use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::{Database, Pool, StoreResult};

/// The channel the change feed notifies; the payload is the highest new sequence number.
pub const CHANGE_CHANNEL: &str = "keygate_changes";

/// A subscription to the change channel over its own connection.
#[derive(Debug)]
pub struct ChangeListener {
    listener: PgListener,
}

impl Database {
    /// Opens a dedicated connection and listens on [`CHANGE_CHANNEL`]; `None` on SQLite, where
    /// one process serves a file and the control socket tells it of command-line changes.
    pub async fn listen_for_changes(&self) -> StoreResult<Option<ChangeListener>> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(None) };
        // A pool of one, apart from the query pool: its connection lives as long as the listener.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with((*pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }
}

impl ChangeListener {
    /// The next notified sequence number (0 when a payload cannot be read); `None` when the
    /// connection was lost: notifications may have been missed, so open a new listener and read
    /// the feed before trusting notifications again.
    pub async fn next(&mut self) -> StoreResult<Option<i64>> {
        match self.listener.try_recv().await? {
            Some(n) => Ok(Some(n.payload().trim().parse().unwrap_or(0))),
            None => Ok(None),
        }
    }
}
