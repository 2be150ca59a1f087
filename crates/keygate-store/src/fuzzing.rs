//! Entry points for `cargo fuzz` (feature `fuzzing`, never in a release build): the filter
//! compiler on arbitrary filters, with its invariants asserted. No SQL is run.

use keygate_domain::{filter, views};

use crate::{Backend, records};

/// Parses `text`, checks it against the view `view_name` and compiles it for both engines. The
/// compiled SQL must bind every value and splice none: as many binds as `$n` placeholders, and
/// no quote, comment or statement separator beyond what the view's own column expressions hold.
pub fn compile_filter(view_name: &str, text: &str) {
    let Some(view) = views::view(view_name) else { return };
    let Ok(expr) = filter::parse(text) else { return };
    if views::check_filter(view, &expr).is_err() {
        return;
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut sql = records::Sql::default();
        if records::compile(&expr, view, backend, &mut sql).is_err() {
            continue;
        }
        let placeholders = (1..=sql.binds.len()).filter(|n| sql.text.contains(&format!("${n}"))).count();
        assert_eq!(placeholders, sql.binds.len(), "every bound value has its placeholder: {}", sql.text);
        assert!(!sql.text.contains(&format!("${}", sql.binds.len() + 1)), "no placeholder without a value");
        let columns: String = view.columns.iter().map(|c| c.sql).collect();
        for forbidden in ["--", ";", "/*"] {
            assert!(!sql.text.contains(forbidden) || columns.contains(forbidden), "{forbidden} in {}", sql.text);
        }
        if !columns.contains('\'') {
            assert!(!sql.text.contains('\''), "a quoted literal was spliced: {}", sql.text);
        }
    }
}
