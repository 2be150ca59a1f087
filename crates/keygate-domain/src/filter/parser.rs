//! The parser: tokens to a syntax tree, by recursive descent, within the depth, `ANY(…)` and
//! `LIKE` limits.

use std::str::FromStr;

use super::{
    ast::{CmpOp, Expr, Value},
    lex::{Keyword, Token, TokenKind, quote_found, text, tokenize},
    limits::{FilterError, MAX_ANY_VALUES, MAX_DEPTH, MAX_LEN, MAX_LIKE_PATTERN, MAX_LIKE_WILDCARDS, MAX_LIKES},
};

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
