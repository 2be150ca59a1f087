//! How commands print: tables for people, whose columns stay in place and whose times read
//! `YYYY-MM-DD HH:MM UTC` as in the console, or JSON (`--json`) with RFC 3339 times.

use keygate_domain::Timestamp;

/// `text` in at most `width` characters, cut with `…`, so that a long value keeps a table's
/// columns in place.
pub(super) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A time for people: `YYYY-MM-DD HH:MM UTC`, as the console shows it.
pub(super) fn when(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    match (text.get(..10), text.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => text,
    }
}

/// A time in JSON: RFC 3339, or `null`.
pub(super) fn json_time(t: Option<Timestamp>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| serde_json::Value::String(t.to_rfc3339()))
}

/// Prints `value` as indented JSON, one document.
pub(super) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_for_people_is_the_consoles_minute_in_utc() {
        let t = Timestamp::parse("2027-01-31T09:05:59Z").expect("time");
        assert_eq!(when(t), "2027-01-31 09:05 UTC");
        assert_eq!(json_time(Some(t)), serde_json::json!("2027-01-31T09:05:59Z"));
    }

    #[test]
    fn a_long_value_is_cut_to_its_column_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abcd", 4), "abcd");
    }
}
