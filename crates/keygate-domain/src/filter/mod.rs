//! The `externalFilter` language (docs/design.md §5): the small boolean filter API clients send to narrow a
//! list, such as `(type='INVOICE.SALES' AND status='APPROVED') OR id > 5`.
//!
//! This module owns the grammar, the tokenizer and parser, the syntax tree, its canonical text and
//! the limits that keep hostile input cheap. It does no I/O and builds no SQL: checking columns
//! against a view, typing values by column and compiling the tree to parameterised SQL belong to the
//! store, which receives an [`Expr`] that is already known to be well formed.
//!
//! One job per file: the limits and the error (`limits`), the syntax tree and its canonical
//! text (`ast`), the tokenizer (`lex`) and the parser (`parser`). This file only declares and
//! re-exports.

mod ast;
mod lex;
mod limits;
mod parser;
#[cfg(test)]
mod tests;

pub use ast::{CmpOp, Decimal, Expr, Value};
pub use limits::{FilterError, MAX_ANY_VALUES, MAX_DEPTH, MAX_LEN, MAX_LIKE_PATTERN, MAX_LIKE_WILDCARDS, MAX_LIKES};
pub use parser::parse;
