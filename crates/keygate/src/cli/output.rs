//! How commands print for people: tables whose columns stay in place.

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
