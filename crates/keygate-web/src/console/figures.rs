//! Per-key figures for the landing page and the usage page: calls today and in 7 days, refusals by
//! reason, the last day with a refusal, the last use; and the tenant's totals. Computed from the
//! service's daily counts ([`KeyUsage`]) and key listing ([`KeyView`]); no SQL and no rules here.

use keygate_domain::Timestamp;
use keygate_service::{KeyUsage, KeyView};

use super::when;

/// Days of daily counts the figures read (the usage page's charts show as many).
pub(crate) const DAYS: i64 = 30;

/// A key counts as unused when its last call is older than this (or it never made one).
pub(crate) const UNUSED_AFTER_DAYS: i64 = 30;

/// A key counts as expiring when it expires within this many days.
pub(crate) const EXPIRING_WITHIN_DAYS: i64 = 14;

/// One key's figures, as the tables show them.
#[derive(Debug, Clone)]
pub(crate) struct KeyFigures {
    pub id: i64,
    pub display: String,
    pub purpose: String,
    pub user: String,
    pub status: &'static str,
    pub status_class: String,
    pub calls_today: i64,
    pub calls_7d: i64,
    pub refused_today: i64,
    pub refused_7d: i64,
    /// Refusals in the last 7 days by reason, most frequent first: `key_disabled 3`.
    pub refusals: Vec<(String, i64)>,
    /// The last day with a refusal (in the last 30 days) and its reasons, or "none".
    pub last_refusal: String,
    pub last_used: String,
    pub never_used: bool,
    /// No call for [`UNUSED_AFTER_DAYS`] days (or never) while the key is active.
    pub unused: bool,
    /// Active and expiring within [`EXPIRING_WITHIN_DAYS`] days: when.
    pub expiring: Option<String>,
}

impl KeyFigures {
    /// Refusals in 7 days as one line, e.g. `key_disabled 3, ip_not_allowed 1`.
    pub(crate) fn refusals_text(&self) -> String {
        if self.refusals.is_empty() {
            return "none".to_owned();
        }
        self.refusals.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")
    }
}

/// The figures of every key in `keys`, in the listing's order. `usage` holds [`DAYS`] days ending
/// today (the service's `key_usage`); a key without counts has none.
pub(crate) fn of_keys(keys: &[KeyView], usage: &[KeyUsage], now: Timestamp) -> Vec<KeyFigures> {
    keys.iter().map(|v| of_key(v, usage.iter().find(|u| u.key_id == v.listing.key.id), now)).collect()
}

fn of_key(v: &KeyView, usage: Option<&KeyUsage>, now: Timestamp) -> KeyFigures {
    let key = &v.listing.key;
    let days: &[std::collections::BTreeMap<String, i64>] = usage.map_or(&[], |u| u.days.as_slice());
    let first_day = usage.map_or(0, |u| u.first_day);
    let today = keygate_service::day_of(now);
    let mut f = KeyFigures {
        id: key.id.0,
        display: key.display.clone(),
        purpose: key.purpose.as_str().to_owned(),
        user: v.listing.user_email.clone(),
        status: v.status,
        status_class: v.status.replace(' ', "-").to_lowercase(),
        calls_today: 0,
        calls_7d: 0,
        refused_today: 0,
        refused_7d: 0,
        refusals: Vec::new(),
        last_refusal: "none".to_owned(),
        last_used: "never".to_owned(),
        never_used: key.last_used_at.is_none(),
        unused: false,
        expiring: None,
    };
    let mut by_reason: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for (i, day) in days.iter().enumerate() {
        let date = first_day + i as i64;
        let age = today - date;
        let refused: Vec<(&String, &i64)> = day.iter().filter(|(o, _)| *o != "accepted").collect();
        let accepted = day.get("accepted").copied().unwrap_or(0);
        let refused_sum: i64 = refused.iter().map(|(_, n)| **n).sum();
        if age == 0 {
            f.calls_today += accepted + refused_sum;
            f.refused_today += refused_sum;
        }
        if (0..7).contains(&age) {
            f.calls_7d += accepted + refused_sum;
            f.refused_7d += refused_sum;
            for (o, n) in &refused {
                *by_reason.entry(o.as_str()).or_insert(0) += **n;
            }
        }
        if !refused.is_empty() {
            let reasons: Vec<&str> = refused.iter().map(|(o, _)| o.as_str()).collect();
            f.last_refusal = format!("{} ({})", Timestamp(date * 86_400_000).to_date_string(), reasons.join(", "));
        }
    }
    let mut refusals: Vec<(String, i64)> = by_reason.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
    refusals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    f.refusals = refusals;
    if let Some(at) = key.last_used_at {
        f.last_used = when(at);
    }
    let active = v.status == "active";
    f.unused = active && key.last_used_at.is_none_or(|at| at.0 < now.plus_days(-UNUSED_AFTER_DAYS).0);
    f.expiring = key.expires_at.filter(|at| active && at.0 <= now.plus_days(EXPIRING_WITHIN_DAYS).0).map(when);
    f
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A key with no calls, for tests of the pages that list figures.
    pub(crate) fn sample(id: i64) -> KeyFigures {
        KeyFigures {
            id,
            display: format!("kg_{id}"),
            purpose: String::new(),
            user: String::new(),
            status: "active",
            status_class: "active".to_owned(),
            calls_today: 0,
            calls_7d: 0,
            refused_today: 0,
            refused_7d: 0,
            refusals: Vec::new(),
            last_refusal: "none".to_owned(),
            last_used: "never".to_owned(),
            never_used: true,
            unused: true,
            expiring: None,
        }
    }

    #[test]
    fn refusals_are_listed_most_frequent_first_and_empty_reads_none() {
        let mut f = sample(1);
        assert_eq!(f.refusals_text(), "none");
        f.refusals = vec![("key_disabled".to_owned(), 3), ("ip_not_allowed".to_owned(), 1)];
        assert_eq!(f.refusals_text(), "key_disabled 3, ip_not_allowed 1");
    }
}
