//! The tokenizer: filter text (as characters) to tokens, each with its position; a bad token is
//! an `Invalid` token carrying its error, so the parser reports it where it is reached.

use super::{
    ast::{CmpOp, Decimal},
    limits::{FilterError, MAX_FOUND_CHARS},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
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

pub(super) fn keyword(word: &str) -> Option<Keyword> {
    KEYWORDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(word)).map(|&(_, keyword)| keyword)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
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
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// Splits the whole input up front; the returned last token is `End`, `Unknown` or `Invalid`.
/// Stopping at the first bad token (rather than failing) lets the parser report an earlier syntax
/// error first, so the error a client sees is always the leftmost one.
pub(super) fn tokenize(chars: &[char]) -> (Vec<Token>, Token) {
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

pub(super) fn text(chars: &[char], start: usize, end: usize) -> String {
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

pub(super) fn quote_found(text: &str) -> String {
    if text.chars().count() > MAX_FOUND_CHARS {
        let head: String = text.chars().take(MAX_FOUND_CHARS).collect();
        format!("`{head}…`")
    } else {
        format!("`{text}`")
    }
}
