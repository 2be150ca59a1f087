//! What a caller asks verification: the credential as it arrived, where the call came from, and
//! what it needs. Plain data; nothing is decided here.

use std::net::IpAddr;

use keygate_domain::{Requirement, UnitId};

/// The credential as it arrived, if any.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Missing,
    Key(&'a str),
    /// More than one, and not all the same: which one is meant cannot be known.
    Ambiguous,
}

#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    pub credential: Credential<'a>,
    pub client_ip: IpAddr,
    pub unit: Option<UnitId>,
    pub required: Option<Requirement>,
}

/// A key a verified service asks about (`POST /v1/keys/verify`).
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    pub key: &'a str,
    /// The address the service's own call came from.
    pub source: IpAddr,
    /// The address the service says the key is used from: a claim, checked against the key's
    /// ranges and used for nothing else.
    pub claimed_ip: Option<IpAddr>,
    pub unit: Option<UnitId>,
    pub required: Option<Requirement>,
}
