//! The usage page: first a table of every key (calls today and in 7 days, refusals by reason, the
//! last day with a refusal, the last use), then per key that was called in the last 30 days a
//! chart of calls per day, accepted and refused by reason, with axes, as inline SVG drawn here on
//! the server (no chart library, no network). Keys without calls get no empty chart: the page says
//! they had none. Members of `Configurator`.

use std::fmt::Write;

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use keygate_domain::Timestamp;
use keygate_service::KeyUsage;

use super::{
    Chrome, Configurator,
    figures::{self, DAYS, KeyFigures},
    render, service_error_page,
};
use crate::AppState;

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
    pub rows: Vec<KeyFigures>,
    pub keys: Vec<KeyChart>,
    /// Keys with no call in the 30 days: named, not drawn.
    pub quiet: Vec<KeyFigures>,
    pub first: String,
    pub last: String,
}

/// Calls per key for every key of the tenant. Members of `Configurator`.
pub(crate) async fn usage_page(State(state): State<AppState>, Configurator(ctx): Configurator) -> Response {
    let k = &state.keygate;
    let tenant = ctx.session.tenant.policy.id;
    let (usage, keys) =
        match (k.key_usage(&ctx.session.caller, tenant, DAYS).await, k.list_keys(&ctx.session.caller, tenant).await) {
            (Ok(u), Ok(keys)) => (u, keys),
            (Err(e), _) | (_, Err(e)) => return service_error_page(&ctx, e),
        };
    let now = Timestamp::now();
    let today = keygate_service::day_of(now);
    let first_day = today - DAYS + 1;
    let rows = figures::of_keys(&keys, &usage, now);
    let mut charts = Vec::new();
    let mut quiet = Vec::new();
    for (v, row) in keys.iter().zip(&rows) {
        let key = &v.listing.key;
        let Some(u) = usage.iter().find(|u| u.key_id == key.id && u.days.iter().any(|d| !d.is_empty())) else {
            quiet.push(row.clone());
            continue;
        };
        let legend: Vec<Legend> =
            u.outcomes().into_iter().map(|o| Legend { color: color(&o), total: u.total(&o), outcome: o }).collect();
        charts.push(KeyChart {
            id: key.id.0,
            display: key.display.clone(),
            purpose: key.purpose.as_str().to_owned(),
            user: v.listing.user_email.clone(),
            status: v.status,
            svg: chart(u, &legend),
            total: legend.iter().map(|l| l.total).sum(),
            legend,
        });
    }
    render(
        StatusCode::OK,
        &UsagePage {
            chrome: ctx.chrome(),
            rows,
            keys: charts,
            quiet,
            first: day_string(first_day),
            last: day_string(today),
        },
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

/// The y axis: a round step (1, 2, 5, 10, 20, 50, …) with at most 4 steps up to at least `max`;
/// returns (step, top).
fn y_scale(max: i64) -> (i64, i64) {
    let max = max.max(1);
    let mut step = 1_i64;
    let mut k = 0;
    while step.saturating_mul(4) < max {
        step = [1, 2, 5][(k + 1) % 3] * 10_i64.saturating_pow(u32::try_from((k + 1) / 3).unwrap_or(0));
        k += 1;
    }
    (step, step * ((max + step - 1) / step))
}

/// A stacked bar chart: one bar per day, segments per outcome, a y axis with round ticks and
/// labels (calls per day), an x axis with a tick and date per week, a `<title>` per bar for the
/// numbers, and a text summary for screen readers.
fn chart(usage: &KeyUsage, legend: &[Legend]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 170.0;
    const LEFT: f64 = 40.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 24.0;
    let days = usage.days.len().max(1);
    let max = usage.days.iter().map(|d| d.values().sum::<i64>()).max().unwrap_or(0);
    let (step, top) = y_scale(max);
    let slot = (W - LEFT) / days as f64;
    let plot = H - TOP - BOTTOM;
    let base = H - BOTTOM;
    let total: i64 = legend.iter().map(|l| l.total).sum();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{total} calls in {days} days; at most {max} on one day" xmlns="http://www.w3.org/2000/svg">"#,
    );
    // The y axis: gridlines and labels at each step.
    let mut tick = 0;
    while tick <= top {
        let y = base - (tick as f64 / top as f64) * plot;
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{W}" y2="{y:.1}" stroke="{c}" stroke-width="1"/><text class="y-tick" x="{x}" y="{ty:.1}" font-size="10" fill="#555" text-anchor="end">{tick}</text>"##,
            c = if tick == 0 { "#888" } else { "#e3e3e3" },
            x = LEFT - 4.0,
            ty = y + 3.5,
        );
        tick += step;
    }
    let _ = write!(
        svg,
        r##"<text x="2" y="{y}" font-size="9" fill="#555" transform="rotate(-90 8 {y})">calls/day</text>"##,
        y = TOP + plot / 2.0 + 20.0
    );
    for (i, day) in usage.days.iter().enumerate() {
        let x = LEFT + i as f64 * slot + 1.0;
        let mut y = base;
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
            let h = (*n as f64 / top as f64) * plot;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"/>"#,
                w = slot - 2.0,
                c = l.color
            );
        }
        svg.push_str("</g>");
        // The x axis: a tick and a date (MM-DD) every 7 days, counted back from today.
        if (days - 1 - i).is_multiple_of(7) {
            let mid = LEFT + (i as f64 + 0.5) * slot;
            let _ = write!(
                svg,
                r##"<line x1="{mid:.1}" y1="{base}" x2="{mid:.1}" y2="{t}" stroke="#888" stroke-width="1"/><text class="x-tick" x="{mid:.1}" y="{ty}" font-size="10" fill="#555" text-anchor="middle">{}</text>"##,
                escape(date.get(5..).unwrap_or(&date)),
                t = base + 4.0,
                ty = H - 6.0,
            );
        }
    }
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

    #[test]
    fn the_y_axis_has_round_ticks_up_to_at_least_the_busiest_day_and_at_most_5_labels() {
        assert_eq!(y_scale(0), (1, 1));
        assert_eq!(y_scale(3), (1, 3));
        assert_eq!(y_scale(7), (2, 8));
        assert_eq!(y_scale(17), (5, 20));
        assert_eq!(y_scale(1234), (500, 1500));
        for max in [1, 9, 41, 99, 100, 101, 999_999] {
            let (step, top) = y_scale(max);
            assert!(top >= max && top / step <= 4, "{max}: step {step}, top {top}");
        }
    }

    #[test]
    fn the_chart_has_labelled_axes_a_date_every_week_and_a_tick_per_step() {
        let mut busy = BTreeMap::new();
        busy.insert("accepted".to_owned(), 17);
        let mut days = vec![BTreeMap::new(); 30];
        days[29] = busy;
        let usage = KeyUsage { key_id: keygate_domain::KeyId(1), first_day: 20_000, days };
        let legend = vec![Legend { outcome: "accepted".to_owned(), color: "#2e7d32", total: 17 }];
        let svg = chart(&usage, &legend);
        // 0, 5, 10, 15, 20 calls per day; a date on day 30 (today) and every 7 days back: 5 dates.
        assert_eq!(svg.matches("class=\"y-tick\"").count(), 5);
        assert!(svg.contains(">20</text>"));
        assert_eq!(svg.matches("class=\"x-tick\"").count(), 5);
        assert!(svg.contains(&day_string(20_029)[5..]));
    }
}
