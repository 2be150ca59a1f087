//! The authenticated Public API over real HTTP: a server on 127.0.0.1:0 per test.

#[macro_use]
mod helpers;

mod abuse;
mod access_log;
mod app;
mod budgets;
mod ceiling_random;
mod connections;
mod console;
mod data;
mod manage_audit;
mod manage_e2e;
mod manage_escalations;
mod manage_keys;
mod manage_operator;
mod manage_users;
mod openapi;
mod openapi_examples;
mod permissions;
mod refusals;
mod revocation;
mod routing;
mod service_metrics;
mod verify;
