//! The SQL of a page read: a checked filter AST compiled to parameterised SQL, and the page's
//! statement for each engine. Text comes only from catalogue constants and `$n` placeholders;
//! every value a client sent is bound.

use keygate_domain::{
    filter::{CmpOp, Expr, Value},
    views::{Bound, Column, ColumnType, View, bind_value},
};

use super::query::{Properties, ViewQuery, Visibility};
use crate::{Backend, StoreError, StoreResult};

/// A SQL text with its bound values, numbered from `$1`.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bound>,
}

impl Sql {
    fn push_bind(&mut self, b: Bound) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

/// Compiles a checked filter into `sql`. The filter must have passed `check_filter` for `view`;
/// anything unexpected is an error, not a guess.
pub(crate) fn compile(expr: &Expr, view: &View, backend: Backend, sql: &mut Sql) -> StoreResult<()> {
    let column = |name: &str| -> StoreResult<&'static Column> {
        view.column(name).ok_or_else(|| StoreError::Conflict(format!("unknown column {name}")))
    };
    let bind = |c: &Column, v: &Value| bind_value(c, v).map_err(|e| StoreError::Conflict(e.to_string()));
    match expr {
        Expr::Or(items) | Expr::And(items) => {
            let joiner = if matches!(expr, Expr::Or(_)) { " OR " } else { " AND " };
            sql.text.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(joiner);
                }
                compile(item, view, backend, sql)?;
            }
            sql.text.push(')');
        }
        Expr::Not(inner) => {
            sql.text.push_str("(NOT ");
            compile(inner, view, backend, sql)?;
            sql.text.push(')');
        }
        Expr::IsNull { column: name, negated } => {
            let c = column(name)?;
            sql.text.push_str(&format!("({} IS {}NULL)", c.sql, if *negated { "NOT " } else { "" }));
        }
        Expr::Like { column: name, pattern } => {
            let c = column(name)?;
            let p = sql.push_bind(Bound::Text(pattern.clone()));
            // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does the same, so both engines agree.
            let op = if backend == Backend::Postgres { "ILIKE" } else { "LIKE" };
            sql.text.push_str(&format!("({} {op} {p})", c.sql));
        }
        Expr::Any { column: name, values } => {
            let c = column(name)?;
            let mut placeholders = Vec::with_capacity(values.len());
            for v in values {
                let b = bind(c, v)?;
                placeholders.push(sql.push_bind(b));
            }
            sql.text.push_str(&format!("({} IN ({}))", c.sql, placeholders.join(", ")));
        }
        Expr::Compare { column: name, op, value: Value::Null } => {
            let c = column(name)?;
            let not = if *op == CmpOp::NotEq { "NOT " } else { "" };
            sql.text.push_str(&format!("({} IS {not}NULL)", c.sql));
        }
        Expr::Compare { column: name, op, value } => {
            let c = column(name)?;
            let b = bind(c, value)?;
            let p = sql.push_bind(b);
            sql.text.push_str(&format!("({} {} {p})", c.sql, op.as_str()));
        }
    }
    Ok(())
}

/// PostgreSQL: the JSON expression of one column value, for `json_build_object`.
fn postgres_value(c: &Column) -> String {
    match c.ty {
        ColumnType::Money => format!("({} / 100.0)", c.sql),
        ColumnType::JsonList => format!("({})::json", c.sql),
        _ => c.sql.to_owned(),
    }
}

/// The SQL for one page of a view.
///
/// - SQLite: `SELECT id, columns…, [properties] … LIMIT limit + 1`, read and rendered by
///   [`crate::sqlite_reader`].
/// - PostgreSQL: `DECLARE page NO SCROLL CURSOR FOR SELECT id, json_build_object(…)::text …`,
///   read in batches by [`super::Records::query`], which stops fetching once the page is full.
pub(crate) fn view_sql(q: &ViewQuery<'_>, backend: Backend) -> StoreResult<Sql> {
    let v = q.view;
    let mut sql = Sql::default();
    let id = v.columns.first().map_or("id", |c| c.sql);
    let with_properties = v.properties && q.shape.properties != Properties::Omit;
    let selected = match backend {
        Backend::Sqlite => {
            let mut columns: Vec<&str> = vec![id];
            columns.extend(q.shape.columns.iter().map(|c| c.sql));
            if with_properties {
                columns.push("properties");
            }
            columns.join(", ")
        }
        Backend::Postgres => {
            let mut members: Vec<String> =
                q.shape.columns.iter().map(|c| format!("'{}', {}", c.name, postgres_value(c))).collect();
            match q.shape.properties {
                Properties::All if v.properties => members.push("'properties', (properties)::json".to_owned()),
                Properties::Only(keys) if v.properties => {
                    let mut picked = Vec::new();
                    for key in keys {
                        let label = sql.push_bind(Bound::Text(key.clone()));
                        picked.push(format!("{label}::text, (properties)::json -> {label}::text"));
                    }
                    members.push(format!("'properties', json_build_object({})", picked.join(", ")));
                }
                _ => {}
            }
            format!("{id} AS id, json_build_object({})::text AS obj", members.join(", "))
        }
    };
    let tenant = sql.push_bind(Bound::Int(q.tenant.0));
    let mut filter = format!("tenant_id = {tenant}");
    if let Some(unit) = v.unit {
        let p = sql.push_bind(Bound::Int(q.unit.0));
        filter.push_str(&format!(" AND {unit} = {p}"));
    }
    if let Some(base) = v.base {
        filter.push_str(&format!(" AND {base}"));
    }
    if let Visibility::Own(user) = q.visibility {
        let p = sql.push_bind(Bound::Int(user.0));
        filter.push_str(&format!(" AND {} = {p}", v.owner));
    }
    if let Some(expr) = q.filter {
        let mut compiled = Sql { text: String::new(), binds: std::mem::take(&mut sql.binds) };
        compile(expr, v, backend, &mut compiled)?;
        sql.binds = compiled.binds;
        filter.push_str(" AND ");
        filter.push_str(&compiled.text);
    }
    if let Some(after) = q.after_id {
        let p = sql.push_bind(Bound::Int(after));
        filter.push_str(&format!(" AND {id} > {p}"));
    }
    let fetch = sql.push_bind(Bound::Int(i64::from(q.limit) + 1));
    let offset =
        sql.push_bind(Bound::Int(if q.after_id.is_some() { 0 } else { i64::try_from(q.offset).unwrap_or(i64::MAX) }));
    let rows = format!("SELECT {selected} FROM {} WHERE {filter} ORDER BY {id} LIMIT {fetch} OFFSET {offset}", v.table);
    sql.text = match backend {
        Backend::Sqlite => rows,
        Backend::Postgres => format!("DECLARE page NO SCROLL CURSOR FOR {rows}"),
    };
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use keygate_domain::{TenantId, UnitId, UserId, filter::parse, views::view};

    use super::*;
    use crate::records::RowShape;

    #[test]
    fn client_text_never_reaches_the_sql_text() {
        let v = view("companies").expect("view");
        let shape = RowShape::full(v);
        let filter = parse("name = 'x''; DROP TABLE users; --' OR name LIKE '%'' OR 1=1 --'").expect("parses");
        let q = ViewQuery {
            view: v,
            tenant: TenantId(1),
            unit: UnitId(1),
            visibility: Visibility::All,
            filter: Some(&filter),
            limit: 10,
            max_bytes: 1 << 20,
            offset: 0,
            after_id: None,
            shape: &shape,
            time_budget: None,
            growth: None,
        };
        let sql = view_sql(&q, Backend::Sqlite).expect("compiles");
        assert!(!sql.text.contains("DROP") && !sql.text.contains("1=1"), "{}", sql.text);
        assert!(sql.binds.contains(&Bound::Text("x'; DROP TABLE users; --".into())));
    }

    #[test]
    fn own_reach_and_the_view_base_narrow_the_query() {
        let v = view("invoices.sales").expect("view");
        let shape = RowShape::full(v);
        let q = ViewQuery {
            view: v,
            tenant: TenantId(1),
            unit: UnitId(2),
            visibility: Visibility::Own(UserId(9)),
            filter: None,
            limit: 10,
            max_bytes: 1 << 20,
            offset: 5,
            after_id: None,
            shape: &shape,
            time_budget: None,
            growth: None,
        };
        let sql = view_sql(&q, Backend::Postgres).expect("compiles");
        assert!(sql.text.contains("tenant_id = $1 AND unit_id = $2 AND (type = 'INVOICE.SALES'"), "{}", sql.text);
        assert!(sql.text.contains("owner_id = $3"));
        assert!(sql.text.contains("ORDER BY id LIMIT $4 OFFSET $5"));
    }
}
