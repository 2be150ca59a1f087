//! What a filter may be (the limits that keep hostile input cheap) and why one is refused
//! ([`FilterError`]).

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
pub(super) const MAX_FOUND_CHARS: usize = 32;

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
