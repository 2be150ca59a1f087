//! What a page read asks for: the view, the tenant and unit, whose records, the filter, the
//! page's bounds and the shape of each row. Plain data; no SQL here.

use std::time::Duration;

use keygate_domain::{
    TenantId, UnitId, UserId,
    filter::Expr,
    views::{Column, View},
};

use super::page::PageGrowth;

/// Whose records a read may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    All,
    /// Only records whose owner column is this user.
    Own(UserId),
}

/// One page request against a view.
#[derive(Clone, Copy)]
pub struct ViewQuery<'a> {
    pub view: &'static View,
    pub tenant: TenantId,
    pub unit: UnitId,
    pub visibility: Visibility,
    pub filter: Option<&'a Expr>,
    /// Rows per page.
    pub limit: u32,
    pub offset: u64,
    /// The most bytes the page's `data` array may take; rows that would pass it are left out.
    pub max_bytes: usize,
    /// Keyset continuation: rows with an id above this one (then `offset` is not applied).
    pub after_id: Option<i64>,
    /// Which columns and properties each row carries.
    pub shape: &'a RowShape<'a>,
    /// How long reading the page may take; past it the read fails with
    /// [`crate::StoreError::is_query_timeout`]. `None`: no budget.
    pub time_budget: Option<Duration>,
    /// The memory the page may take, asked for as it grows; `None`: only `max_bytes` bounds it.
    pub growth: Option<&'a PageGrowth>,
}

impl std::fmt::Debug for ViewQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewQuery")
            .field("view", &self.view.name)
            .field("tenant", &self.tenant)
            .field("unit", &self.unit)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("max_bytes", &self.max_bytes)
            .field("time_budget", &self.time_budget)
            .finish_non_exhaustive()
    }
}

/// The columns of a rendered row, and which custom properties it carries.
#[derive(Debug, Clone)]
pub struct RowShape<'a> {
    pub columns: Vec<&'static Column>,
    pub properties: Properties<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Properties<'a> {
    /// No `properties` member.
    Omit,
    /// Every property, as stored.
    All,
    /// Only these keys.
    Only(&'a [String]),
}

impl RowShape<'static> {
    /// Every column of the view, and every property when it has them.
    pub fn full(view: &'static View) -> Self {
        Self {
            columns: view.columns.iter().collect(),
            properties: if view.properties { Properties::All } else { Properties::Omit },
        }
    }
}
