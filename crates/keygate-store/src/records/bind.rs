//! Binding values onto a query: filter values ([`bind_all`]) and the fields of a record write
//! ([`bind_fields`]). Macros, because sqlx's query types differ per engine and per query kind.

/// Binds `$binds` (a `&[Bound]`) onto query `$q`.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bound::Int(i) => q.bind(*i),
                Bound::Float(f) => q.bind(*f),
                Bound::Text(t) => q.bind(t.clone()),
                Bound::Bool(x) => q.bind(*x),
            };
        }
        q
    }};
}

/// Binds each `&FieldValue` of `$values` onto query `$q`.
macro_rules! bind_fields {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                FieldValue::Null(SqlType::Int) => q.bind(None::<i64>),
                FieldValue::Null(SqlType::Float) => q.bind(None::<f64>),
                FieldValue::Null(SqlType::Text) => q.bind(None::<String>),
                FieldValue::Null(SqlType::Bool) => q.bind(None::<bool>),
                FieldValue::Bound(b) => bind_all!(q, std::iter::once(b)),
            };
        }
        q
    }};
}

pub(super) use bind_all;
pub(super) use bind_fields;
