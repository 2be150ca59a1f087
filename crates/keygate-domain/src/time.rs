//! Points in time as Unix milliseconds: cheap to compare on the hot path, identical in SQLite and
//! PostgreSQL, formatted as RFC 3339 only at the edges.

use std::fmt;

use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

/// A UTC instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// The text could not be read as a date or a date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (YYYY-MM-DD) or an RFC 3339 date-time (2027-01-31T12:00:00Z)")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// The current time. The only clock read in the domain; rules take `now` as a parameter.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Self((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub fn plus_days(self, days: i64) -> Self {
        self.plus_millis(days.saturating_mul(86_400_000))
    }

    /// Reads `YYYY-MM-DD` (midnight UTC at the start of that day) or an RFC 3339 date-time.
    pub fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        let text = text.trim();
        if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(Self::from_datetime(dt));
        }
        Date::parse(text, format_description!("[year]-[month]-[day]"))
            .map(|d| Self::from_datetime(d.midnight().assume_utc()))
            .map_err(|_| InvalidTimestamp(text.to_owned()))
    }

    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|dt| dt.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// The calendar day (UTC) as `YYYY-MM-DD`.
    pub fn to_date_string(self) -> String {
        let rfc = self.to_rfc3339();
        rfc.get(..10).unwrap_or(&rfc).to_owned()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_means_midnight_utc_of_that_day() {
        let t = Timestamp::parse("2027-01-31").expect("valid date");
        assert_eq!(t.to_rfc3339(), "2027-01-31T00:00:00Z");
    }

    #[test]
    fn an_rfc3339_date_time_round_trips() {
        let t = Timestamp::parse("2027-01-31T12:34:56Z").expect("valid");
        assert_eq!(t.to_rfc3339(), "2027-01-31T12:34:56Z");
        assert_eq!(t.to_date_string(), "2027-01-31");
    }

    #[test]
    fn nonsense_is_refused_with_the_text_in_the_message() {
        let err = Timestamp::parse("next tuesday").expect_err("not a date");
        assert!(err.to_string().contains("next tuesday"));
    }
}
