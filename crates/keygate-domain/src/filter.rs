//! The `externalFilter` language (DESIGN.md §5): the small boolean filter API clients send to narrow a
//! list, such as `(type='INVOICE.SALES' AND status='APPROVED') OR id > 5`.
//!
//! This module owns the grammar, the tokenizer and parser, the syntax tree, its canonical text and
//! the limits that keep hostile input cheap. It does no I/O and builds no SQL: checking columns
//! against a view, typing values by column and compiling the tree to parameterised SQL belong to the
//! store, which receives an [`Expr`] that is already known to be well formed.

use std::{fmt, str::FromStr};

/// Longer filters are refused before tokenizing, so the cost of a request is bounded up front.
pub const MAX_LEN: usize = 4096;

/// Parentheses and `NOT` each add a level; the parser recurses once per level, so this bound is
/// what keeps deliberately deep input from overflowing the stack.
pub const MAX_DEPTH: usize = 32;

/// Bounds the number of bind parameters a single `ANY(…)` can make the store generate.
pub const MAX_ANY_VALUES: usize = 1000;

/// The longest `LIKE` pattern, in characters. Matching a pattern costs up to its length times the
/// text's length on every row (`'%aaa…b%'` of 1 990 characters took 6.9 s of CPU over 2 000
/// rows on SQLite); 64 characters keep any pattern under 3 % of that.
pub const MAX_LIKE_PATTERN: usize = 64;

/// Wildcards (`%` and `_`) one `LIKE` pattern may hold.
pub const MAX_LIKE_WILDCARDS: usize = 8;

/// `LIKE` conditions one filter may hold: each is matched against every row.
pub const MAX_LIKES: usize = 4;

/// Tokens longer than this are shortened in error messages, so that an error never echoes a
/// client's whole input back at it.
const MAX_FOUND_CHARS: usize = 32;

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
pub struct Decimal(String);

/// Why a filter was refused: where, what the parser was looking for, and what it found instead.
/// Fields are public so the web layer can put them in an `invalid_filter` problem body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: expected {expected}, found {found}")]
pub struct FilterError {
    /// 0-based offset in characters (not bytes) into the filter text.
    pub position: usize,
    /// What would have been accepted there, e.g. "a value" or "`)` closing the `(` at character 0".
    pub expected: String,
    /// What was there instead: a backquoted token such as "`)`", or "end of input".
    pub found: String,
}

/// Parses filter text into a syntax tree, or says where and why it is not a filter.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    let length = input.chars().count();
    if length > MAX_LEN {
        return Err(FilterError {
            position: MAX_LEN,
            expected: format!("a filter of at most {MAX_LEN} characters"),
            found: format!("{length} characters"),
        });
    }
    let chars: Vec<char> = input.chars().collect();
    let (tokens, last) = tokenize(&chars);
    let mut parser = Parser { chars: &chars, tokens, last, pos: 0, depth: 0, likes: 0 };
    let expr = parser.or()?;
    let token = parser.peek()?;
    if token.kind != TokenKind::End {
        return Err(parser.unexpected(token, "`AND`, `OR` or end of input"));
    }
    Ok(expr)
}

impl FromStr for Expr {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    Is,
    Null,
    Like,
    Any,
    True,
    False,
}

const KEYWORDS: [(&str, Keyword); 9] = [
    ("AND", Keyword::And),
    ("OR", Keyword::Or),
    ("NOT", Keyword::Not),
    ("IS", Keyword::Is),
    ("NULL", Keyword::Null),
    ("LIKE", Keyword::Like),
    ("ANY", Keyword::Any),
    ("TRUE", Keyword::True),
    ("FALSE", Keyword::False),
];

fn keyword(word: &str) -> Option<Keyword> {
    KEYWORDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(word)).map(|&(_, keyword)| keyword)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    LParen,
    RParen,
    Comma,
    Cmp(CmpOp),
    Keyword(Keyword),
    Ident(String),
    Str(String),
    Int(i64),
    Dec(Decimal),
    /// A character no token starts with. The parser reports it, because only the parser knows
    /// what was expected there.
    Unknown,
    /// A malformed token whose own shape says what was expected (an unterminated string, `1.`).
    Invalid(FilterError),
    End,
}

/// A token and its span, in characters.
#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

/// Splits the whole input up front; the returned last token is `End`, `Unknown` or `Invalid`.
/// Stopping at the first bad token (rather than failing) lets the parser report an earlier syntax
/// error first, so the error a client sees is always the leftmost one.
fn tokenize(chars: &[char]) -> (Vec<Token>, Token) {
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        while chars.get(pos).is_some_and(|c| c.is_whitespace()) {
            pos += 1;
        }
        let token = lex_token(chars, pos);
        if matches!(token.kind, TokenKind::End | TokenKind::Unknown | TokenKind::Invalid(_)) {
            return (tokens, token);
        }
        pos = token.end;
        tokens.push(token);
    }
}

fn lex_token(chars: &[char], start: usize) -> Token {
    let at = |i: usize| chars.get(i).copied();
    let Some(first) = at(start) else {
        return Token { kind: TokenKind::End, start, end: start };
    };
    let (kind, len) = match first {
        '(' => (TokenKind::LParen, 1),
        ')' => (TokenKind::RParen, 1),
        ',' => (TokenKind::Comma, 1),
        '=' => (TokenKind::Cmp(CmpOp::Eq), 1),
        '!' if at(start + 1) == Some('=') => (TokenKind::Cmp(CmpOp::NotEq), 2),
        '!' => return invalid(chars, start + 1, "`=` after `!`"),
        '<' => match at(start + 1) {
            Some('=') => (TokenKind::Cmp(CmpOp::LtEq), 2),
            Some('>') => (TokenKind::Cmp(CmpOp::NotEq), 2),
            _ => (TokenKind::Cmp(CmpOp::Lt), 1),
        },
        '>' => match at(start + 1) {
            Some('=') => (TokenKind::Cmp(CmpOp::GtEq), 2),
            _ => (TokenKind::Cmp(CmpOp::Gt), 1),
        },
        '\'' => return lex_string(chars, start),
        '-' | '0'..='9' => return lex_number(chars, start),
        c if c.is_ascii_alphabetic() || c == '_' => {
            let end = scan(chars, start + 1, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let word = text(chars, start, end);
            let kind = match keyword(&word) {
                Some(keyword) => TokenKind::Keyword(keyword),
                None => TokenKind::Ident(word),
            };
            (kind, end - start)
        }
        _ => (TokenKind::Unknown, 1),
    };
    Token { kind, start, end: start + len }
}

fn lex_string(chars: &[char], start: usize) -> Token {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                let expected = format!("`'` closing the string opened at character {start}");
                return invalid(chars, i, &expected);
            }
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                value.push('\'');
                i += 2;
            }
            Some('\'') => {
                return Token { kind: TokenKind::Str(value), start, end: i + 1 };
            }
            // PostgreSQL text cannot hold NUL, and SQLite would cut the value short at it: a
            // string with one is no value either engine can compare.
            Some('\0') => return invalid(chars, i, "a character other than NUL in the string"),
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

fn lex_number(chars: &[char], start: usize) -> Token {
    let is_digit = |c: char| c.is_ascii_digit();
    let whole_start = if chars.get(start) == Some(&'-') { start + 1 } else { start };
    let mut end = scan(chars, whole_start, is_digit);
    if end == whole_start {
        return invalid(chars, end, "a digit after `-`");
    }
    let written_as_decimal = chars.get(end) == Some(&'.');
    if written_as_decimal {
        let fraction_start = end + 1;
        end = scan(chars, fraction_start, is_digit);
        if end == fraction_start {
            return invalid(chars, end, "a digit after the decimal point");
        }
    }
    let written = text(chars, start, end);
    let kind = if written_as_decimal {
        TokenKind::Dec(Decimal(written))
    } else {
        match written.parse::<i64>() {
            Ok(n) => TokenKind::Int(n),
            Err(_) => TokenKind::Invalid(FilterError {
                position: start,
                expected: format!("an integer between {} and {}", i64::MIN, i64::MAX),
                found: quote_found(&written),
            }),
        }
    };
    Token { kind, start, end }
}

/// The index of the first character from `from` on that does not satisfy `keep`.
fn scan(chars: &[char], from: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut i = from;
    while chars.get(i).is_some_and(|&c| keep(c)) {
        i += 1;
    }
    i
}

fn text(chars: &[char], start: usize, end: usize) -> String {
    chars.get(start..end).unwrap_or_default().iter().collect()
}

fn invalid(chars: &[char], position: usize, expected: &str) -> Token {
    let found = match chars.get(position) {
        Some(c) => format!("`{c}`"),
        None => "end of input".to_owned(),
    };
    Token {
        kind: TokenKind::Invalid(FilterError { position, expected: expected.to_owned(), found }),
        start: position,
        end: position,
    }
}

fn quote_found(text: &str) -> String {
    if text.chars().count() > MAX_FOUND_CHARS {
        let head: String = text.chars().take(MAX_FOUND_CHARS).collect();
        format!("`{head}…`")
    } else {
        format!("`{text}`")
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug)]
struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    /// `End`, `Unknown` or `Invalid`: what every read past the good tokens sees.
    last: Token,
    pos: usize,
    depth: usize,
    /// `LIKE` conditions read so far.
    likes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<&Token, FilterError> {
        let token = self.tokens.get(self.pos).unwrap_or(&self.last);
        match &token.kind {
            TokenKind::Invalid(error) => Err(error.clone()),
            _ => Ok(token),
        }
    }

    fn next(&mut self) -> Result<Token, FilterError> {
        let token = self.peek()?.clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        Ok(token)
    }

    /// Consumes the next token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind) -> Result<bool, FilterError> {
        let matched = self.peek()?.kind == *kind;
        if matched {
            self.pos += 1;
        }
        Ok(matched)
    }

    fn expect(&mut self, kind: &TokenKind, expected: &str) -> Result<(), FilterError> {
        let token = self.next()?;
        if token.kind == *kind { Ok(()) } else { Err(self.unexpected(&token, expected)) }
    }

    fn unexpected(&self, token: &Token, expected: &str) -> FilterError {
        let found = match token.kind {
            TokenKind::End => "end of input".to_owned(),
            _ => quote_found(&text(self.chars, token.start, token.end)),
        };
        FilterError { position: token.start, expected: expected.to_owned(), found }
    }

    /// Called before consuming the `(` or `NOT` at the current position.
    fn descend(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            let token = self.peek()?;
            let expected = format!("at most {MAX_DEPTH} levels of parentheses and `NOT`");
            return Err(self.unexpected(token, &expected));
        }
        self.depth += 1;
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.and()?];
        while self.eat(&TokenKind::Keyword(Keyword::Or))? {
            operands.push(self.and()?);
        }
        Ok(group(operands, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.not()?];
        while self.eat(&TokenKind::Keyword(Keyword::And))? {
            operands.push(self.not()?);
        }
        Ok(group(operands, Expr::And))
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.peek()?.kind != TokenKind::Keyword(Keyword::Not) {
            return self.primary();
        }
        self.descend()?;
        self.pos += 1;
        let inner = self.not()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let token = self.peek()?.clone();
        match token.kind {
            TokenKind::LParen => {
                self.descend()?;
                self.pos += 1;
                let expr = self.or()?;
                let expected = format!("`)` closing the `(` at character {}", token.start);
                self.expect(&TokenKind::RParen, &expected)?;
                self.depth -= 1;
                Ok(expr)
            }
            TokenKind::Ident(column) => {
                self.pos += 1;
                self.condition(column)
            }
            _ => Err(self.unexpected(&token, "a column name, `NOT` or `(`")),
        }
    }

    /// Whatever may follow a column name.
    fn condition(&mut self, column: String) -> Result<Expr, FilterError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Cmp(CmpOp::Eq) if self.eat(&TokenKind::Keyword(Keyword::Any))? => {
                let values = self.any_values()?;
                Ok(Expr::Any { column, values })
            }
            TokenKind::Cmp(op) => {
                let value = self.value()?;
                Ok(Expr::Compare { column, op, value })
            }
            TokenKind::Keyword(Keyword::Is) => {
                let negated = self.eat(&TokenKind::Keyword(Keyword::Not))?;
                let expected = if negated { "`NULL`" } else { "`NOT` or `NULL`" };
                self.expect(&TokenKind::Keyword(Keyword::Null), expected)?;
                Ok(Expr::IsNull { column, negated })
            }
            TokenKind::Keyword(Keyword::Like) => {
                if self.likes == MAX_LIKES {
                    let expected = format!("at most {MAX_LIKES} `LIKE` conditions in a filter");
                    return Err(self.unexpected(&token, &expected));
                }
                self.likes += 1;
                let token = self.next()?;
                match token.kind {
                    TokenKind::Str(pattern) => {
                        like_within_limits(&pattern, token.start)?;
                        Ok(Expr::Like { column, pattern })
                    }
                    _ => Err(self.unexpected(&token, "a quoted pattern")),
                }
            }
            _ => Err(self.unexpected(&token, "a comparison operator, `IS` or `LIKE`")),
        }
    }

    /// The `( value { , value } )` after `= ANY`.
    fn any_values(&mut self) -> Result<Vec<Value>, FilterError> {
        self.expect(&TokenKind::LParen, "`(` after `ANY`")?;
        let mut values = Vec::new();
        loop {
            if values.len() == MAX_ANY_VALUES {
                let token = self.peek()?;
                let expected = format!("at most {MAX_ANY_VALUES} values in `ANY(…)`");
                return Err(self.unexpected(token, &expected));
            }
            values.push(self.value()?);
            let token = self.next()?;
            match token.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok(values),
                _ => return Err(self.unexpected(&token, "`,` or `)`")),
            }
        }
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Str(text) => Ok(Value::String(text)),
            TokenKind::Int(n) => Ok(Value::Integer(n)),
            TokenKind::Dec(d) => Ok(Value::Decimal(d)),
            TokenKind::Keyword(Keyword::True) => Ok(Value::Bool(true)),
            TokenKind::Keyword(Keyword::False) => Ok(Value::Bool(false)),
            TokenKind::Keyword(Keyword::Null) => Ok(Value::Null),
            _ => Err(self.unexpected(&token, "a value")),
        }
    }
}

/// Refuses a `LIKE` pattern (the string at character `start`) longer than [`MAX_LIKE_PATTERN`]
/// or with more than [`MAX_LIKE_WILDCARDS`] wildcards: matching it could cost seconds per query.
fn like_within_limits(pattern: &str, start: usize) -> Result<(), FilterError> {
    let length = pattern.chars().count();
    if length > MAX_LIKE_PATTERN {
        return Err(FilterError {
            position: start,
            expected: format!("a `LIKE` pattern of at most {MAX_LIKE_PATTERN} characters"),
            found: format!("{length} characters"),
        });
    }
    let wildcards = pattern.chars().filter(|c| matches!(c, '%' | '_')).count();
    if wildcards > MAX_LIKE_WILDCARDS {
        return Err(FilterError {
            position: start,
            expected: format!("a `LIKE` pattern with at most {MAX_LIKE_WILDCARDS} wildcards (`%` and `_`)"),
            found: format!("{wildcards} wildcards"),
        });
    }
    Ok(())
}

/// A group of one is just its member: parentheses and single operands add no tree nodes.
fn group(mut operands: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if operands.len() == 1 { operands.remove(0) } else { make(operands) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn compare(column: &str, op: CmpOp, value: Value) -> Expr {
        Expr::Compare { column: column.to_owned(), op, value }
    }

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    fn decimal(text: &str) -> Value {
        Value::Decimal(Decimal::parse(text).expect("a decimal literal"))
    }

    fn error(input: &str) -> FilterError {
        parse(input).expect_err("the filter should be refused")
    }

    #[test]
    fn documented_examples_parse() {
        assert_eq!(parse("isDisabled=false"), Ok(compare("isDisabled", CmpOp::Eq, Value::Bool(false))));
        assert_eq!(
            parse("(type='INVOICE.SALES' AND status='APPROVED')"),
            Ok(Expr::And(vec![
                compare("type", CmpOp::Eq, string("INVOICE.SALES")),
                compare("status", CmpOp::Eq, string("APPROVED")),
            ]))
        );
        assert_eq!(parse("id>5"), Ok(compare("id", CmpOp::Gt, Value::Integer(5))));
        assert_eq!(
            parse("NOT (a = 1 OR b <> 'x')"),
            Ok(Expr::Not(Box::new(Expr::Or(vec![
                compare("a", CmpOp::Eq, Value::Integer(1)),
                compare("b", CmpOp::NotEq, string("x")),
            ]))))
        );
        assert_eq!(
            parse("id = ANY(1,2,3)"),
            Ok(Expr::Any {
                column: "id".to_owned(),
                values: vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)],
            })
        );
        assert_eq!(parse("note IS NOT NULL"), Ok(Expr::IsNull { column: "note".to_owned(), negated: true }));
        assert_eq!(parse("name LIKE 'Ac%'"), Ok(Expr::Like { column: "name".to_owned(), pattern: "Ac%".to_owned() }));
    }

    #[test]
    fn every_comparison_operator_is_understood() {
        for (text, op) in [
            ("=", CmpOp::Eq),
            ("!=", CmpOp::NotEq),
            ("<>", CmpOp::NotEq),
            ("<", CmpOp::Lt),
            ("<=", CmpOp::LtEq),
            (">", CmpOp::Gt),
            (">=", CmpOp::GtEq),
        ] {
            assert_eq!(
                parse(&format!("amountTotal{text}-3")),
                Ok(compare("amountTotal", op, Value::Integer(-3))),
                "operator {text}"
            );
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse("not a is null and b = TRUE or c = Null"), parse("NOT a IS NULL AND b = true OR c = null"),);
        assert_eq!(parse("id = any(1)"), parse("id = ANY(1)"));
        assert_eq!(parse("name like 'x'"), parse("name LIKE 'x'"));
    }

    #[test]
    fn a_nul_inside_a_string_is_refused_where_it_is() {
        let e = error("name = 'a\u{0}b'");
        assert_eq!(e.position, 9);
        assert!(e.expected.contains("NUL"), "{e}");
    }

    #[test]
    fn a_doubled_quote_is_an_escaped_quote() {
        assert_eq!(parse("name = 'O''Brien'"), Ok(compare("name", CmpOp::Eq, string("O'Brien"))));
        assert_eq!(parse("name = ''''"), Ok(compare("name", CmpOp::Eq, string("'"))));
        assert_eq!(parse("name = ''"), Ok(compare("name", CmpOp::Eq, string(""))));
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let a = compare("a", CmpOp::Eq, Value::Integer(1));
        let b = compare("b", CmpOp::Eq, Value::Integer(2));
        let c = compare("c", CmpOp::Eq, Value::Integer(3));
        assert_eq!(
            parse("a = 1 OR b = 2 AND c = 3"),
            Ok(Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])]))
        );
        assert_eq!(parse("NOT a = 1 AND b = 2"), Ok(Expr::And(vec![Expr::Not(Box::new(a.clone())), b.clone()])));
        assert_eq!(parse("a = 1 OR b = 2 OR c = 3"), Ok(Expr::Or(vec![a, b, c])));
    }

    #[test]
    fn explicit_grouping_is_kept_in_the_tree() {
        let a = compare("a", CmpOp::Eq, Value::Integer(1));
        let b = compare("b", CmpOp::Eq, Value::Integer(2));
        let c = compare("c", CmpOp::Eq, Value::Integer(3));
        let grouped = Expr::Or(vec![Expr::Or(vec![a.clone(), b.clone()]), c]);
        assert_eq!(parse("(a = 1 OR b = 2) OR c = 3"), Ok(grouped.clone()));
        assert_eq!(grouped.to_string(), "(a = 1 OR b = 2) OR c = 3");
        assert_eq!(parse("((a = 1))"), Ok(a));
    }

    #[test]
    fn numbers_keep_their_exact_value() {
        assert_eq!(parse("amountTotal >= -12.50"), Ok(compare("amountTotal", CmpOp::GtEq, decimal("-12.50"))));
        assert_eq!(parse(&format!("id = {}", i64::MIN)), Ok(compare("id", CmpOp::Eq, Value::Integer(i64::MIN))));
        let Ok(Expr::Compare { value: Value::Decimal(d), .. }) = parse("x = 0.25") else {
            panic!("a decimal comparison");
        };
        assert_eq!(d.as_str(), "0.25");
        assert_eq!(d.to_f64(), 0.25);
    }

    #[test]
    fn an_integer_too_large_for_64_bits_is_refused() {
        let e = error("id = 9223372036854775808");
        assert_eq!(e.position, 5);
        assert!(e.expected.starts_with("an integer between"), "{e}");
        assert_eq!(e.found, "`9223372036854775808`");
    }

    #[test]
    fn malformed_numbers_say_what_digit_is_missing() {
        assert_eq!(
            error("id = 1.").to_string(),
            "at character 7: expected a digit after the decimal point, found end of input"
        );
        assert_eq!(error("id = -x").to_string(), "at character 6: expected a digit after `-`, found `x`");
    }

    #[test]
    fn a_missing_value_names_its_position() {
        let e = error("(id = 1 OR a=)");
        assert_eq!(e, FilterError { position: 13, expected: "a value".to_owned(), found: "`)`".to_owned() });
        assert_eq!(e.to_string(), "at character 13: expected a value, found `)`");
    }

    #[test]
    fn an_unclosed_parenthesis_names_its_position() {
        assert_eq!(
            error("x = 1 AND (a = 1 OR b = 2").to_string(),
            "at character 25: expected `)` closing the `(` at character 10, found end of input"
        );
    }

    #[test]
    fn an_unterminated_string_names_where_it_opened() {
        assert_eq!(
            error("name = 'abc").to_string(),
            "at character 11: expected `'` closing the string opened at character 7, found end of input"
        );
    }

    #[test]
    fn the_leftmost_error_is_reported() {
        // The unterminated string comes later; the missing value is what the client must fix first.
        assert_eq!(error("a = = 'oops").position, 4);
    }

    #[test]
    fn a_lone_bang_is_not_an_operator() {
        assert_eq!(error("a ! 1").to_string(), "at character 3: expected `=` after `!`, found ` `");
    }

    #[test]
    fn empty_input_is_refused() {
        for input in ["", "   \n\t"] {
            let e = error(input);
            assert_eq!(e.expected, "a column name, `NOT` or `(`");
            assert_eq!(e.found, "end of input");
        }
    }

    #[test]
    fn trailing_tokens_are_refused() {
        assert_eq!(error("a = 1 b = 2").to_string(), "at character 6: expected `AND`, `OR` or end of input, found `b`");
        assert_eq!(error("a = 1)").found, "`)`");
    }

    #[test]
    fn a_keyword_is_not_a_column_name() {
        let e = error("null = 1");
        assert_eq!(e.position, 0);
        assert_eq!(e.found, "`null`");
        // ...but a column may start with one.
        assert!(parse("nullable = true AND order.notes IS NULL").is_ok());
    }

    #[test]
    fn like_takes_only_a_quoted_pattern() {
        assert_eq!(error("name LIKE 5").to_string(), "at character 10: expected a quoted pattern, found `5`");
    }

    #[test]
    fn a_like_pattern_over_64_characters_is_refused_naming_the_limit() {
        let at_limit = format!("note LIKE '%{}b%'", "a".repeat(MAX_LIKE_PATTERN - 3));
        assert!(parse(&at_limit).is_ok());
        // The pattern that cost 6.9 s of CPU per request on SQLite.
        let hostile = format!("note LIKE '%{}b%'", "a".repeat(1990));
        let e = error(&hostile);
        assert_eq!(e.position, 10, "where the pattern starts");
        assert_eq!(
            e.to_string(),
            "at character 10: expected a `LIKE` pattern of at most 64 characters, found 1993 characters"
        );
    }

    #[test]
    fn a_like_pattern_with_more_than_8_wildcards_is_refused() {
        assert!(parse("name LIKE '%a%b%c%d_e_f_g_'").is_ok());
        let e = error("name LIKE '%a%b%c%d%e%f%g%h%'");
        assert_eq!(e.expected, "a `LIKE` pattern with at most 8 wildcards (`%` and `_`)");
        assert_eq!(e.found, "9 wildcards");
    }

    #[test]
    fn a_filter_holds_at_most_4_like_conditions() {
        let likes = |n: usize| vec!["name LIKE '%x%'"; n].join(" OR ");
        assert!(parse(&likes(MAX_LIKES)).is_ok());
        let e = error(&likes(MAX_LIKES + 1));
        assert_eq!(e.expected, "at most 4 `LIKE` conditions in a filter");
        assert_eq!(e.found, "`LIKE`");
    }

    #[test]
    fn is_must_be_followed_by_null() {
        assert_eq!(error("a IS 1").expected, "`NOT` or `NULL`");
        assert_eq!(error("a IS NOT 1").expected, "`NULL`");
    }

    #[test]
    fn any_needs_at_least_one_value_and_only_after_equals() {
        assert_eq!(error("id = ANY()").expected, "a value");
        assert_eq!(error("id = ANY(1,)").expected, "a value");
        assert_eq!(error("id = ANY(1 2)").expected, "`,` or `)`");
        assert_eq!(error("id = ANY 1").expected, "`(` after `ANY`");
        assert_eq!(error("id <> ANY(1)").expected, "a value");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = error("name = 'Ωmega' AND ü");
        assert_eq!(e.position, 19);
        assert_eq!(e.found, "`ü`");
    }

    #[test]
    fn whitespace_is_free_between_tokens() {
        assert_eq!(parse(" \t( a\n=\r\n1 )  AND\u{a0}NOT b IS NULL "), parse("(a=1) AND NOT b IS NULL"));
    }

    #[test]
    fn input_longer_than_the_limit_is_refused() {
        let long = format!("a = '{}'", "x".repeat(MAX_LEN));
        let e = error(&long);
        assert_eq!(e.position, MAX_LEN);
        assert!(e.expected.contains("4096"), "{e}");

        let at_limit = format!("a = '{}'", "ä".repeat(MAX_LEN - 6));
        assert_eq!(at_limit.chars().count(), MAX_LEN);
        assert!(parse(&at_limit).is_ok());
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_overflowing_the_stack() {
        let nested = |depth: usize| format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let e = error(&nested(MAX_DEPTH + 1));
        assert_eq!(e.position, MAX_DEPTH);
        assert_eq!(e.found, "`(`");

        let e = error(&"(".repeat(MAX_LEN));
        assert_eq!(e.position, MAX_DEPTH);
    }

    #[test]
    fn not_counts_towards_the_nesting_limit() {
        let nots = |n: usize| format!("{}a = 1", "NOT ".repeat(n));
        assert!(parse(&nots(MAX_DEPTH)).is_ok());
        assert_eq!(error(&nots(MAX_DEPTH + 1)).found, "`NOT`");
        assert!(parse(&"NOT (".repeat(MAX_DEPTH / 2 + 1)).is_err());
        assert!(parse(&"NOT ".repeat(1000)).is_err());
    }

    #[test]
    fn an_any_list_longer_than_the_limit_is_refused() {
        let list = |n: usize| {
            let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            format!("id = ANY({})", values.join(","))
        };
        assert!(parse(&list(MAX_ANY_VALUES)).is_ok());
        let e = error(&list(MAX_ANY_VALUES + 1));
        assert_eq!(e.found, format!("`{MAX_ANY_VALUES}`"));
        assert!(e.expected.contains("at most 1000 values"), "{e}");
    }

    #[test]
    fn long_tokens_are_shortened_in_errors() {
        let e = error(&format!("a = 1 '{}'", "y".repeat(200)));
        assert_eq!(e.found, format!("`'{}…`", "y".repeat(MAX_FOUND_CHARS - 1)));
    }

    #[test]
    fn canonical_text_is_spaced_quoted_and_bracketed() {
        let expr = parse("not(a=1 or b!='it''s')and c=any( 1 ,2.0,null )AND d is null").unwrap();
        assert_eq!(expr.to_string(), "NOT (a = 1 OR b <> 'it''s') AND c = ANY(1, 2.0, null) AND d IS NULL");
        assert_eq!(parse(&expr.to_string()), Ok(expr));
    }

    #[test]
    fn columns_are_listed_once_in_order_of_first_appearance() {
        let expr = parse("b = 1 OR NOT (a IS NULL AND b LIKE 'x') OR c = ANY(1) OR a > 2").unwrap();
        assert_eq!(expr.columns(), ["b", "a", "c"]);
    }

    #[test]
    fn decimals_accept_only_the_written_form() {
        assert!(Decimal::parse("-1.5").is_some());
        for bad in ["1", "1.", ".5", "-.5", "1.5e3", "+1.5", "1.5.1", "١.٢", ""] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    const SOUP: &[&str] = &[
        "(",
        ")",
        ",",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "!",
        "-",
        ".",
        "'",
        "''",
        "AND",
        "or",
        "Not",
        "IS",
        "null",
        "LIKE",
        "any",
        "true",
        "FALSE",
        "a",
        "isDisabled",
        "x.y",
        "'s'",
        "'it''s'",
        "'unclosed",
        "0",
        "-12",
        "3.25",
        "1.",
        "99999999999999999999",
        "é",
        "\u{0}",
        "💥",
        "#",
    ];

    fn likes(expr: &Expr) -> usize {
        match expr {
            Expr::Or(items) | Expr::And(items) => items.iter().map(likes).sum(),
            Expr::Not(inner) => likes(inner),
            Expr::Like { .. } => 1,
            _ => 0,
        }
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let piece = (proptest::sample::select(SOUP), prop_oneof![Just(""), Just(" ")]);
        proptest::collection::vec(piece, 0..120)
            .prop_map(|pieces| pieces.into_iter().flat_map(|(token, space)| [token, space]).collect())
    }

    fn column() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.]{0,10}".prop_filter("a keyword is not a column", |c| keyword(c).is_none())
    }

    fn text_literal() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z' %_]{0,8}",
            proptest::collection::vec(any::<char>().prop_filter("NUL is refused", |c| *c != '\0'), 0..8)
                .prop_map(String::from_iter),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            text_literal().prop_map(Value::String),
            any::<i64>().prop_map(Value::Integer),
            "-?[0-9]{1,6}\\.[0-9]{1,6}".prop_map(|d| Value::Decimal(Decimal(d))),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn cmp_op() -> impl Strategy<Value = CmpOp> {
        proptest::sample::select(&[CmpOp::Eq, CmpOp::NotEq, CmpOp::Lt, CmpOp::LtEq, CmpOp::Gt, CmpOp::GtEq][..])
    }

    /// Trees in the parser's normal form: every `Or`/`And` has at least two operands.
    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            (column(), cmp_op(), value()).prop_map(|(column, op, value)| Expr::Compare { column, op, value }),
            (column(), proptest::collection::vec(value(), 1..5))
                .prop_map(|(column, values)| Expr::Any { column, values }),
            (column(), any::<bool>()).prop_map(|(column, negated)| Expr::IsNull { column, negated }),
            (column(), text_literal()).prop_map(|(column, pattern)| Expr::Like { column, pattern }),
        ];
        leaf.prop_recursive(6, 48, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..5).prop_map(Expr::Or),
                proptest::collection::vec(inner.clone(), 2..5).prop_map(Expr::And),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(input in any::<String>()) {
            if let Err(e) = parse(&input) {
                prop_assert!(e.position <= input.chars().count());
            }
        }

        #[test]
        fn arbitrary_characters_never_panic(chars in proptest::collection::vec(any::<char>(), 0..64)) {
            let input: String = chars.into_iter().collect();
            let _ = parse(&input);
        }

        #[test]
        fn token_soup_never_panics_and_what_parses_round_trips(input in token_soup()) {
            match parse(&input) {
                Ok(expr) => prop_assert_eq!(parse(&expr.to_string()), Ok(expr)),
                Err(e) => prop_assert!(e.position <= input.chars().count()),
            }
        }

        #[test]
        fn canonical_text_parses_back_to_the_same_tree(expr in expr()) {
            let text = expr.to_string();
            prop_assume!(text.chars().count() <= MAX_LEN);
            if likes(&expr) > MAX_LIKES {
                let e = parse(&text).expect_err("too many LIKE conditions");
                prop_assert!(e.expected.contains("`LIKE` conditions"), "{}", e);
            } else {
                prop_assert_eq!(parse(&text), Ok(expr));
            }
        }
    }
}
