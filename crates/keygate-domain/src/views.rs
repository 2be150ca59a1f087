//! The views catalogue: which views exist, their columns with types, the resource that guards
//! them, and the typing of filter values by column. Pure data and checks; the store turns a
//! checked filter into parameterised SQL using the `sql` names here (never client text).

use crate::{
    filter::{CmpOp, Expr, Value},
    permission::Resource,
};

/// How a column's values are stored, filtered and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Text,
    Bool,
    /// `YYYY-MM-DD`, stored as text so it sorts and compares the same on both engines.
    Date,
    /// Amounts in minor units (cents) stored as integers; rendered and filtered as decimals.
    Money,
    /// A floating-point quantity such as hours.
    Number,
    /// A JSON list, rendered as JSON, not filterable.
    JsonList,
}

impl ColumnType {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Int => "an integer",
            Self::Text => "a string in single quotes",
            Self::Bool => "true or false",
            Self::Date => "a date 'YYYY-MM-DD'",
            Self::Money => "an amount such as 1250.50",
            Self::Number => "a number",
            Self::JsonList => "nothing (this column cannot be filtered)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The API name (camelCase, as in the original system).
    pub name: &'static str,
    /// The SQL column or expression. A catalogue constant, never client input.
    pub sql: &'static str,
    pub ty: ColumnType,
}

/// Who may read a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A business resource: full reach with a grant, own records otherwise.
    Resource(Resource),
    /// Any valid key of the tenant (e.g. the list of units).
    AnyKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub name: &'static str,
    pub table: &'static str,
    pub guard: Guard,
    /// A constant SQL condition narrowing the table (e.g. sales invoices only).
    pub base: Option<&'static str>,
    /// The column naming the record's owner, for "own records only" reach (`NULL`: no owner).
    pub owner: &'static str,
    /// The column holding the unit, when records belong to units.
    pub unit: Option<&'static str>,
    pub columns: &'static [Column],
    /// Whether rows carry custom `properties` (a JSON object).
    pub properties: bool,
    /// An `externalFilter` on this view's own columns that finds rows in the demo data: the
    /// example the API reference and the OpenAPI document show for the view.
    pub example: &'static str,
}

const fn col(name: &'static str, sql: &'static str, ty: ColumnType) -> Column {
    Column { name, sql, ty }
}

use ColumnType::{Bool, Date, Int, JsonList, Money, Number, Text};

const COMPANY: &[Column] = &[
    col("id", "id", Int),
    col("name", "name", Text),
    col("registrationNumber", "registration_number", Text),
    col("vatId", "vat_id", Text),
    col("address", "address", Text),
    col("isClient", "is_client", Bool),
    col("isSupplier", "is_supplier", Bool),
    col("isDisabled", "is_disabled", Bool),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const PERSON: &[Column] = &[
    col("id", "id", Int),
    col("firstName", "first_name", Text),
    col("lastName", "last_name", Text),
    col("email", "email", Text),
    col("phone", "phone", Text),
    col("companyId", "company_id", Int),
    col("isDisabled", "is_disabled", Bool),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const JOB: &[Column] = &[
    col("id", "id", Int),
    col("number", "number", Text),
    col("name", "name", Text),
    col("status", "status", Text),
    col("companyId", "company_id", Int),
    col("startDate", "start_date", Date),
    col("endDate", "end_date", Date),
    col("budget", "budget_cents", Money),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const TASK: &[Column] = &[
    col("id", "id", Int),
    col("jobId", "job_id", Int),
    col("name", "name", Text),
    col("assigneeId", "assignee_id", Int),
    col("status", "status", Text),
    col("dueDate", "due_date", Date),
    col("estimate", "estimate_hours", Number),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const DOCUMENT: &[Column] = &[
    col("id", "id", Int),
    col("type", "type", Text),
    col("number", "number", Text),
    col("status", "status", Text),
    col("companyId", "company_id", Int),
    col("personId", "person_id", Int),
    col("issueDate", "issue_date", Date),
    col("dueDate", "due_date", Date),
    col("currency", "currency", Text),
    col("amountNet", "amount_net_cents", Money),
    col("amountVat", "amount_vat_cents", Money),
    col("amountTotal", "amount_total_cents", Money),
    col("tags", "tags", JsonList),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const TIME: &[Column] = &[
    col("id", "id", Int),
    col("userId", "user_id", Int),
    col("jobId", "job_id", Int),
    col("taskId", "task_id", Int),
    col("date", "date", Date),
    col("hours", "hours", Number),
    col("note", "note", Text),
    col("ownerId", "owner_id", Int),
    col("agencyId", "unit_id", Int),
];
const USER: &[Column] = &[
    col("id", "id", Int),
    col("name", "name", Text),
    col("email", "email", Text),
    col("category", "category", Text),
    col("isDisabled", "(NOT active)", Bool),
];
const GROUP: &[Column] =
    &[col("id", "id", Int), col("name", "name", Text), col("isSystem", "(system IS NOT NULL)", Bool)];
const UNIT: &[Column] = &[col("id", "unit_id", Int), col("name", "name", Text)];

const fn business(
    name: &'static str,
    table: &'static str,
    resource: Resource,
    base: Option<&'static str>,
    columns: &'static [Column],
    example: &'static str,
) -> View {
    View {
        name,
        table,
        guard: Guard::Resource(resource),
        base,
        owner: "owner_id",
        unit: Some("unit_id"),
        columns,
        properties: true,
        example,
    }
}

/// Every view of the Public API.
pub const VIEWS: &[View] = &[
    View {
        name: "units",
        table: "units",
        guard: Guard::AnyKey,
        base: None,
        owner: "unit_id",
        unit: None,
        columns: UNIT,
        properties: false,
        example: "name LIKE '%studio'",
    },
    View {
        name: "users",
        table: "users",
        guard: Guard::Resource(Resource::Users),
        base: None,
        owner: "id",
        unit: None,
        columns: USER,
        properties: false,
        example: "category = 'programmatic' AND isDisabled = false",
    },
    View {
        name: "groups",
        table: "user_groups",
        guard: Guard::Resource(Resource::Users),
        base: None,
        // A group has no owner: without a grant on users a key sees no group (`id` here made a
        // user see the group whose id happened to equal theirs).
        owner: "NULL",
        unit: None,
        columns: GROUP,
        properties: false,
        example: "name = ANY('Supervisor', 'Configurator')",
    },
    business("companies", "companies", Resource::Companies, None, COMPANY, "isClient = true AND isDisabled = false"),
    business(
        "companies.client",
        "companies",
        Resource::Companies,
        Some("is_client"),
        COMPANY,
        "name LIKE 'Acme%' AND isDisabled = false",
    ),
    business("companies.supplier", "companies", Resource::Companies, Some("is_supplier"), COMPANY, "isClient = true"),
    business("persons", "persons", Resource::Persons, None, PERSON, "lastName = 'Svoboda' AND companyId IS NOT NULL"),
    business("jobs", "jobs", Resource::Jobs, None, JOB, "status = 'IN_PROGRESS' AND budget >= 100000"),
    business("tasks", "tasks", Resource::Tasks, None, TASK, "status <> 'DONE' AND dueDate < '2026-07-01'"),
    business(
        "documents",
        "documents",
        Resource::Documents,
        None,
        DOCUMENT,
        "type = ANY('DOCUMENT.CONTRACT', 'DOCUMENT.QUOTATION.SALES') AND currency = 'EUR'",
    ),
    business(
        "invoices.sales",
        "documents",
        Resource::Invoices,
        Some("(type = 'INVOICE.SALES' OR type LIKE 'INVOICE.SALES.%')"),
        DOCUMENT,
        "status = 'APPROVED' AND amountTotal > 1000",
    ),
    business(
        "invoices.purchase",
        "documents",
        Resource::Invoices,
        Some("(type = 'INVOICE.PURCHASE' OR type LIKE 'INVOICE.PURCHASE.%')"),
        DOCUMENT,
        "status <> 'CANCELLED' AND issueDate >= '2026-06-01'",
    ),
    View {
        name: "intervals.track",
        table: "time_entries",
        guard: Guard::Resource(Resource::Time),
        base: None,
        owner: "owner_id",
        unit: Some("unit_id"),
        columns: TIME,
        properties: false,
        example: "hours >= 4 AND date >= '2026-06-01'",
    },
];

pub fn view(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.name == name)
}

impl View {
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// What is wrong with a filter, given the view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterProblem {
    #[error("`{column}` is not a column of this view; the columns are: {known}")]
    UnknownColumn { column: String, known: String },
    #[error("`{column}` takes {expected}, not {found}")]
    TypeMismatch { column: String, expected: &'static str, found: String },
}

/// A value typed for its column, ready to be bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// A value as an error names it: a long string is cut to its first 32 characters, so an error
/// never echoes kilobytes of what was sent.
fn describe(v: &Value) -> String {
    const SHOWN: usize = 32;
    match v {
        Value::String(s) if s.chars().count() > SHOWN => {
            let head: String = s.chars().take(SHOWN).collect();
            format!("the string '{head}…' ({} characters)", s.chars().count())
        }
        Value::String(s) => format!("the string '{s}'"),
        Value::Integer(i) => format!("the number {i}"),
        Value::Decimal(d) => format!("the number {}", d.as_str()),
        Value::Bool(b) => format!("{b}"),
        Value::Null => "null".to_owned(),
    }
}

/// Types `value` for `column`, or says what the column takes.
pub fn bind_value(column: &Column, value: &Value) -> Result<Bound, FilterProblem> {
    let mismatch = || FilterProblem::TypeMismatch {
        column: column.name.to_owned(),
        expected: column.ty.describe(),
        found: describe(value),
    };
    match (column.ty, value) {
        (Int, Value::Integer(i)) => Ok(Bound::Int(*i)),
        (Text, Value::String(s)) => Ok(Bound::Text(s.clone())),
        (Bool, Value::Bool(b)) => Ok(Bound::Bool(*b)),
        (Date, Value::String(s)) if is_date(s) => Ok(Bound::Text(s.clone())),
        (Money, Value::Integer(i)) => i.checked_mul(100).map(Bound::Int).ok_or_else(mismatch),
        (Money, Value::Decimal(d)) => {
            let cents = (d.to_f64() * 100.0).round();
            if cents.is_finite() && cents.abs() < 9.0e15 { Ok(Bound::Int(cents as i64)) } else { Err(mismatch()) }
        }
        (Number, Value::Integer(i)) => Ok(Bound::Float(*i as f64)),
        (Number, Value::Decimal(d)) => Ok(Bound::Float(d.to_f64())),
        _ => Err(mismatch()),
    }
}

/// `YYYY-MM-DD` with a real month and day.
pub fn is_date(s: &str) -> bool {
    crate::time::Timestamp::parse(s).is_ok() && s.len() == 10
}

/// Checks every column and value of `expr` against `view` (unknown columns, value types, LIKE
/// only on text, comparisons of order not on booleans).
pub fn check_filter(view: &View, expr: &Expr) -> Result<(), FilterProblem> {
    let lookup = |name: &str| {
        view.column(name).filter(|c| c.ty != JsonList).ok_or_else(|| FilterProblem::UnknownColumn {
            column: name.to_owned(),
            known: view.columns.iter().filter(|c| c.ty != JsonList).map(|c| c.name).collect::<Vec<_>>().join(", "),
        })
    };
    match expr {
        Expr::Or(items) | Expr::And(items) => items.iter().try_for_each(|e| check_filter(view, e)),
        Expr::Not(inner) => check_filter(view, inner),
        Expr::IsNull { column, .. } => lookup(column).map(|_| ()),
        Expr::Like { column, pattern } => {
            let c = lookup(column)?;
            if c.ty == Text || c.ty == Date {
                Ok(())
            } else {
                Err(FilterProblem::TypeMismatch {
                    column: column.clone(),
                    expected: c.ty.describe(),
                    found: format!("LIKE '{pattern}'"),
                })
            }
        }
        Expr::Any { column, values } => {
            let c = lookup(column)?;
            values.iter().try_for_each(|v| bind_value(c, v).map(|_| ()))
        }
        Expr::Compare { column, op, value } => {
            let c = lookup(column)?;
            if *value == Value::Null {
                return if matches!(op, CmpOp::Eq | CmpOp::NotEq) {
                    Ok(())
                } else {
                    Err(FilterProblem::TypeMismatch {
                        column: column.clone(),
                        expected: c.ty.describe(),
                        found: "null".into(),
                    })
                };
            }
            if c.ty == Bool && !matches!(op, CmpOp::Eq | CmpOp::NotEq) {
                return Err(FilterProblem::TypeMismatch {
                    column: column.clone(),
                    expected: "= or <> with true or false",
                    found: op.as_str().into(),
                });
            }
            bind_value(c, value).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;

    fn check(view_name: &str, filter: &str) -> Result<(), FilterProblem> {
        check_filter(view(view_name).expect("view"), &parse(filter).expect("parses"))
    }

    #[test]
    fn every_view_the_issue_names_exists() {
        for name in [
            "units",
            "users",
            "groups",
            "companies",
            "companies.client",
            "companies.supplier",
            "persons",
            "jobs",
            "tasks",
            "documents",
            "invoices.sales",
            "invoices.purchase",
            "intervals.track",
        ] {
            assert!(view(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_documented_examples_type_check() {
        assert_eq!(check("companies", "isDisabled=false"), Ok(()));
        assert_eq!(check("documents", "(type='INVOICE.SALES' AND status='APPROVED')"), Ok(()));
        assert_eq!(check("jobs", "id>5"), Ok(()));
        assert_eq!(check("invoices.sales", "amountTotal >= 1250.50 AND issueDate >= '2026-01-01'"), Ok(()));
    }

    #[test]
    fn every_views_example_filter_parses_and_uses_only_its_own_columns() {
        for v in VIEWS {
            let expr = parse(v.example).unwrap_or_else(|e| panic!("{}: `{}` does not parse: {e:?}", v.name, v.example));
            assert_eq!(check_filter(v, &expr), Ok(()), "{}: `{}`", v.name, v.example);
        }
        // The one example shown for every view before: `companies` has neither column.
        assert!(check("companies", "status = 'APPROVED' AND amountTotal > 1000").is_err());
    }

    #[test]
    fn an_unknown_column_is_named_with_the_known_ones() {
        let err = check("companies", "password = 'x'").expect_err("unknown");
        assert!(
            matches!(err, FilterProblem::UnknownColumn { ref column, ref known } if column == "password" && known.contains("isClient"))
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_refused() {
        assert!(matches!(check("jobs", "id = 'five'"), Err(FilterProblem::TypeMismatch { .. })));
        let long = format!("id = '{}'", "x".repeat(4000));
        let message = check("jobs", &long).expect_err("mismatch").to_string();
        assert!(message.len() < 120, "a type mismatch echoes {} bytes: {message}", message.len());
        assert!(matches!(check("companies", "isDisabled = 1"), Err(FilterProblem::TypeMismatch { .. })));
        assert!(matches!(check("documents", "issueDate = '2026-13-01'"), Err(FilterProblem::TypeMismatch { .. })));
        assert!(matches!(check("documents", "amountNet LIKE '1%'"), Err(FilterProblem::TypeMismatch { .. })));
        assert!(matches!(check("documents", "tags = 'x'"), Err(FilterProblem::UnknownColumn { .. })));
    }

    #[test]
    fn money_is_bound_in_cents() {
        let c = view("documents").and_then(|v| v.column("amountTotal")).expect("column");
        let d = crate::filter::Decimal::parse("12.345").expect("decimal");
        assert_eq!(bind_value(c, &Value::Decimal(d)), Ok(Bound::Int(1235)));
        assert_eq!(bind_value(c, &Value::Integer(7)), Ok(Bound::Int(700)));
    }
}
