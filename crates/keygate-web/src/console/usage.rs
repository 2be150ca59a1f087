//! The usage page: per key, calls per day over the last 30 days, accepted and refused by reason,
//! as inline SVG drawn here on the server (no chart library, no network). Members of
//! `Configurator`.

use std::fmt::Write;

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use keygate_domain::Timestamp;
use keygate_service::KeyUsage;

use super::{Chrome, Configurator, render, service_error_page};
use crate::AppState;

const DAYS: i64 = 30;

#[derive(Debug)]
pub(crate) struct Legend {
    pub outcome: String,
    pub color: &'static str,
    pub total: i64,
}

#[derive(Debug)]
pub(crate) struct KeyChart {
    pub id: i64,
    pub display: String,
    pub purpose: String,
    pub user: String,
    pub status: &'static str,
    /// Built by [`chart`] from numbers and escaped text only.
    pub svg: String,
    pub legend: Vec<Legend>,
    pub total: i64,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
pub(crate) struct UsagePage {
    pub chrome: Chrome,
    pub keys: Vec<KeyChart>,
    pub first: String,
    pub last: String,
}

/// Calls per day for every key of the tenant. Members of `Configurator`.
pub(crate) async fn usage_page(State(state): State<AppState>, Configurator(ctx): Configurator) -> Response {
    let k = &state.keygate;
    let tenant = ctx.session.tenant.policy.id;
    let (usage, keys) =
        match (k.key_usage(&ctx.session.caller, tenant, DAYS).await, k.list_keys(&ctx.session.caller, tenant).await) {
            (Ok(u), Ok(keys)) => (u, keys),
            (Err(e), _) | (_, Err(e)) => return service_error_page(&ctx, e),
        };
    let today = keygate_service::day_of(Timestamp::now());
    let first_day = today - DAYS + 1;
    let charts = keys
        .iter()
        .map(|v| {
            let key = &v.listing.key;
            let empty = KeyUsage { key_id: key.id, first_day, days: vec![Default::default(); DAYS as usize] };
            let u = usage.iter().find(|u| u.key_id == key.id).unwrap_or(&empty);
            let legend: Vec<Legend> =
                u.outcomes().into_iter().map(|o| Legend { color: color(&o), total: u.total(&o), outcome: o }).collect();
            KeyChart {
                id: key.id.0,
                display: key.display.clone(),
                purpose: key.purpose.as_str().to_owned(),
                user: v.listing.user_email.clone(),
                status: v.status,
                svg: chart(u, &legend),
                total: legend.iter().map(|l| l.total).sum(),
                legend,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &UsagePage { chrome: ctx.chrome(), keys: charts, first: day_string(first_day), last: day_string(today) },
    )
}

fn day_string(day: i64) -> String {
    Timestamp(day * 86_400_000).to_date_string()
}

/// Accepted calls are green; each refusal reason has its own colour.
fn color(outcome: &str) -> &'static str {
    match outcome {
        "accepted" => "#2e7d32",
        "key_disabled" => "#ef6c00",
        "key_revoked" => "#6d4c41",
        "key_expired" => "#8e24aa",
        "user_inactive" => "#c62828",
        "api_disabled" => "#455a64",
        "ip_not_allowed" => "#d81b60",
        "rate_limited" => "#f9a825",
        "insufficient_permission" | "unit_not_allowed" => "#1565c0",
        _ => "#757575",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A stacked bar chart: one bar per day, segments per outcome, a `<title>` per bar for the
/// numbers, and a text summary for screen readers.
fn chart(usage: &KeyUsage, legend: &[Legend]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 140.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 20.0;
    let days = usage.days.len().max(1);
    let max = usage.days.iter().map(|d| d.values().sum::<i64>()).max().unwrap_or(0).max(1);
    let slot = W / days as f64;
    let plot = H - TOP - BOTTOM;
    let total: i64 = legend.iter().map(|l| l.total).sum();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{} calls in {days} days; at most {max} on one day" xmlns="http://www.w3.org/2000/svg">"#,
        total,
        max = if total == 0 { 0 } else { max }
    );
    let _ =
        write!(svg, r##"<line x1="0" y1="{y}" x2="{W}" y2="{y}" stroke="#bbb" stroke-width="1"/>"##, y = H - BOTTOM);
    let _ = write!(svg, r##"<text x="2" y="11" font-size="10" fill="#555">{max} per day</text>"##);
    for (i, day) in usage.days.iter().enumerate() {
        let x = i as f64 * slot + 1.0;
        let mut y = H - BOTTOM;
        let date = day_string(usage.first_day + i as i64);
        let summary: Vec<String> =
            legend.iter().filter_map(|l| day.get(&l.outcome).map(|n| format!("{n} {}", l.outcome))).collect();
        let _ = write!(
            svg,
            "<g><title>{}: {}</title>",
            escape(&date),
            escape(&if summary.is_empty() { "no calls".to_owned() } else { summary.join(", ") })
        );
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{TOP}" width="{w:.1}" height="{plot}" fill="transparent"/>"##,
            w = slot - 2.0
        );
        for l in legend {
            let Some(n) = day.get(&l.outcome) else { continue };
            let h = (*n as f64 / max as f64) * plot;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"/>"#,
                w = slot - 2.0,
                c = l.color
            );
        }
        svg.push_str("</g>");
    }
    let _ = write!(
        svg,
        r##"<text x="0" y="{y}" font-size="10" fill="#555">{}</text>"##,
        escape(&day_string(usage.first_day)),
        y = H - 5.0
    );
    let _ = write!(
        svg,
        r##"<text x="{W}" y="{y}" font-size="10" fill="#555" text-anchor="end">{}</text>"##,
        escape(&day_string(usage.first_day + days as i64 - 1)),
        y = H - 5.0
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_chart_escapes_outcome_names_and_draws_one_bar_group_per_day() {
        let mut day = BTreeMap::new();
        day.insert("<script>".to_owned(), 3);
        day.insert("accepted".to_owned(), 5);
        let usage = KeyUsage { key_id: keygate_domain::KeyId(1), first_day: 20_000, days: vec![day, BTreeMap::new()] };
        let legend: Vec<Legend> = usage
            .outcomes()
            .into_iter()
            .map(|o| Legend { color: color(&o), total: usage.total(&o), outcome: o })
            .collect();
        let svg = chart(&usage, &legend);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<g>").count(), 2);
        assert!(svg.contains("8 calls in 2 days"));
    }
}
