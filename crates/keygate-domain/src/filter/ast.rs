//! The syntax tree of a filter and its canonical text: trees the parser makes print to text
//! that parses back to the identical tree.

use std::fmt;

/// A parsed filter.
///
/// The parser only produces `Or` and `And` with at least two operands and never wraps a lone
/// operand in either; explicit grouping is kept, so `(a = 1 OR b = 1) OR c = 1` is an `Or` inside an
/// `Or`. Trees in that form print (with [`Display`](fmt::Display)) to text that parses back to the
/// identical tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        column: String,
        op: CmpOp,
        value: Value,
    },
    /// `column = ANY(v1, v2, …)`; never empty.
    Any {
        column: String,
        values: Vec<Value>,
    },
    /// `column IS NULL`, or `column IS NOT NULL` when `negated`.
    IsNull {
        column: String,
        negated: bool,
    },
    /// `column LIKE 'pattern'`; the pattern is kept as written (`%` and `_` are the store's to
    /// interpret).
    Like {
        column: String,
        pattern: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    /// Written `!=` or `<>`; both mean the same, so the tree does not remember which.
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A literal. Values are untyped here because only the store knows a column's type (a date
/// column takes `'YYYY-MM-DD'`, for instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Bool(bool),
    Null,
}

/// A number with a fractional part, kept exactly as written (`-12.50`).
///
/// Kept as text rather than `f64` so that no precision is lost before the database sees it, and so
/// that the canonical text reproduces it exactly (`1.50` stays `1.50`; `f64` would print `1.5`, and
/// `1.0` as `1`, which would reparse as an integer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(pub(super) String);

impl Expr {
    /// The columns the filter refers to, each once, in order of first appearance, so the store
    /// can refuse unknown columns before compiling anything.
    pub fn columns(&self) -> Vec<&str> {
        let mut columns = Vec::new();
        self.collect_columns(&mut columns);
        columns
    }

    fn collect_columns<'a>(&'a self, columns: &mut Vec<&'a str>) {
        match self {
            Expr::Or(operands) | Expr::And(operands) => {
                for operand in operands {
                    operand.collect_columns(columns);
                }
            }
            Expr::Not(inner) => inner.collect_columns(columns),
            Expr::Compare { column, .. }
            | Expr::Any { column, .. }
            | Expr::IsNull { column, .. }
            | Expr::Like { column, .. } => {
                if !columns.contains(&column.as_str()) {
                    columns.push(column);
                }
            }
        }
    }
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

impl Decimal {
    /// Accepts exactly what the filter language writes: an optional `-`, digits, `.`, digits.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = digits.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (all_digits(whole) && all_digits(fraction)).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nearest `f64`, for stores that cannot bind exact decimals.
    pub fn to_f64(&self) -> f64 {
        self.0.parse().expect("a Decimal is always valid float syntax")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(operands) => write_operands(f, operands, " OR "),
            Expr::And(operands) => write_operands(f, operands, " AND "),
            Expr::Not(inner) => {
                f.write_str("NOT ")?;
                write_operand(f, inner)
            }
            Expr::Compare { column, op, value } => write!(f, "{column} {op} {value}"),
            Expr::Any { column, values } => {
                write!(f, "{column} = ANY(")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
            Expr::IsNull { column, negated } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{column} IS {not}NULL")
            }
            Expr::Like { column, pattern } => write!(f, "{column} LIKE {}", Quoted(pattern)),
        }
    }
}

fn write_operands(f: &mut fmt::Formatter<'_>, operands: &[Expr], separator: &str) -> fmt::Result {
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_operand(f, operand)?;
    }
    Ok(())
}

/// Always bracketing a nested `Or`/`And` is more than precedence needs, but it is what keeps an
/// explicitly grouped tree (an `Or` directly inside an `Or`) from flattening on the way back.
fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Expr) -> fmt::Result {
    match operand {
        Expr::Or(_) | Expr::And(_) => write!(f, "({operand})"),
        _ => write!(f, "{operand}"),
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => write!(f, "{}", Quoted(text)),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string literal in filter syntax: single quotes, an inner quote doubled.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for part in self.0.split_inclusive('\'') {
            f.write_str(part)?;
            if part.ends_with('\'') {
                f.write_str("'")?;
            }
        }
        f.write_str("'")
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
