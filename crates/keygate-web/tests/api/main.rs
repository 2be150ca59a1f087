//! The authenticated Public API over real HTTP: a server on 127.0.0.1:0 per test.

mod abuse;
mod connections;
mod console;
mod data;
mod helpers;
mod refusals;
mod revocation;
mod routing;
mod verify;
