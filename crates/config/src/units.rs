//! Durations and sizes written the way PostgreSQL and Patroni users write them.
//!
//! A bare number takes the base unit of the setting (seconds for timeouts, bytes for sizes); a
//! string may carry a PostgreSQL-style unit suffix (`"10s"`, `"5min"`, `"1h"`, `"16MB"`, `"1024kB"`).
//! Size units are powers of 1024, as in PostgreSQL.

use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Why a duration or size could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing but whitespace.
    #[error("empty value")]
    Empty,
    /// The numeric part does not parse.
    #[error("invalid number {0:?}")]
    Number(String),
    /// The suffix is not one of the accepted units.
    #[error("unknown unit {unit:?} (expected one of {expected})")]
    Unit {
        /// The suffix found.
        unit: String,
        /// The accepted suffixes.
        expected: &'static str,
    },
    /// Negative values make no sense for these settings.
    #[error("must not be negative")]
    Negative,
    /// The value does not fit in 64 bits.
    #[error("value is too large")]
    Overflow,
}

const DURATION_UNITS: &str = "us, ms, s, min, h, d";
const SIZE_UNITS: &str = "B, kB, MB, GB, TB";

fn split_number(input: &str) -> Result<(f64, &str), UnitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let (num, unit) = s.split_at(end);
    let n: f64 = num.parse().map_err(|_| UnitError::Number(num.to_owned()))?;
    if !n.is_finite() {
        return Err(UnitError::Number(num.to_owned()));
    }
    if n < 0.0 {
        return Err(UnitError::Negative);
    }
    Ok((n, unit.trim()))
}

/// Parses a duration; a bare number is in `base` (seconds for every Patroni timeout).
pub fn parse_duration_with_base(input: &str, base: std::time::Duration) -> Result<std::time::Duration, UnitError> {
    let (n, unit) = split_number(input)?;
    let micros_per_unit: f64 = match unit {
        "" => base.as_secs_f64() * 1e6,
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "min" => 60e6,
        "h" => 3600e6,
        "d" => 86400e6,
        other => return Err(UnitError::Unit { unit: other.to_owned(), expected: DURATION_UNITS }),
    };
    let micros = (n * micros_per_unit).round();
    if micros > u64::MAX as f64 {
        return Err(UnitError::Overflow);
    }
    Ok(std::time::Duration::from_micros(micros as u64))
}

/// Parses a duration whose bare numbers are seconds: `10`, `"10s"`, `"5min"`, `"1h"`, `"250ms"`.
pub fn parse_duration(input: &str) -> Result<std::time::Duration, UnitError> {
    parse_duration_with_base(input, std::time::Duration::from_secs(1))
}

/// Parses a size in bytes: `1048576`, `"1024kB"`, `"16MB"`, `"1GB"`, `"512B"`.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let (n, unit) = split_number(input)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        // PostgreSQL only knows "kB"; "KB" is a common spelling we accept rather than reject.
        "kB" | "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(UnitError::Unit { unit: other.to_owned(), expected: SIZE_UNITS }),
    };
    let bytes = (n * mult).round();
    if bytes > u64::MAX as f64 {
        return Err(UnitError::Overflow);
    }
    Ok(bytes as u64)
}

/// A duration setting (seconds when written as a bare number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A whole number of seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }
    /// The standard library value.
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
    /// Seconds, fractional part included.
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Reads a YAML/JSON value: a number of seconds or a string with a unit.
    pub fn from_value(v: &Value) -> Result<Self, UnitError> {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().ok_or(UnitError::Overflow)?;
                parse_duration(&f.to_string()).map(Self)
            }
            Value::String(s) => parse_duration(s).map(Self),
            _ => Err(UnitError::Number(v.to_string())),
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us % 1_000_000 == 0 {
            write!(f, "{}s", us / 1_000_000)
        } else if us % 1000 == 0 {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for Duration {
    /// Whole seconds serialize as a plain integer (what Patroni itself writes); anything finer keeps a unit.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            s.serialize_u64(self.0.as_secs())
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

/// A size setting in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Size(pub u64);

impl Size {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// Reads a YAML/JSON value: a number of bytes or a string with a unit.
    pub fn from_value(v: &Value) -> Result<Self, UnitError> {
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(u) => Ok(Self(u)),
                None if n.as_i64().is_some() => Err(UnitError::Negative),
                None => parse_size(&n.to_string()).map(Self),
            },
            Value::String(s) => parse_size(s).map(Self),
            _ => Err(UnitError::Number(v.to_string())),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration as Std;

    #[test]
    fn duration_forms() {
        assert_eq!(parse_duration("10"), Ok(Std::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Std::from_secs(10)));
        assert_eq!(parse_duration(" 10 s "), Ok(Std::from_secs(10)));
        assert_eq!(parse_duration("5min"), Ok(Std::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Std::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Std::from_secs(86400)));
        assert_eq!(parse_duration("250ms"), Ok(Std::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Std::from_millis(1500)));
        assert_eq!(parse_duration("7us"), Ok(Std::from_micros(7)));
    }

    #[test]
    fn duration_errors() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(parse_duration("-1"), Err(UnitError::Negative));
        assert_eq!(
            parse_duration("10m").unwrap_err().to_string(),
            "unknown unit \"m\" (expected one of us, ms, s, min, h, d)"
        );
        assert_eq!(parse_duration("abc").unwrap_err().to_string(), "invalid number \"\"");
    }

    #[test]
    fn size_forms() {
        assert_eq!(parse_size("1048576"), Ok(1048576));
        assert_eq!(parse_size("1024kB"), Ok(1048576));
        assert_eq!(parse_size("16MB"), Ok(16 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("1XB").is_err());
    }

    #[test]
    fn values_and_serialization() {
        let d = Duration::from_value(&serde_json::json!(30)).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "30");
        let d = Duration::from_value(&serde_json::json!("1500ms")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1500ms\"");
        assert_eq!(Size::from_value(&serde_json::json!("16MB")).unwrap(), Size(16 << 20));
        assert_eq!(Size::from_value(&serde_json::json!(-1)), Err(UnitError::Negative));
    }

    proptest! {
        #[test]
        fn bare_seconds_round_trip(n in 0u64..10_000_000) {
            prop_assert_eq!(parse_duration(&n.to_string()), Ok(Std::from_secs(n)));
        }

        #[test]
        fn units_scale(n in 0u64..100_000) {
            prop_assert_eq!(parse_duration(&format!("{n}min")), Ok(Std::from_secs(n * 60)));
            prop_assert_eq!(parse_duration(&format!("{n}h")), Ok(Std::from_secs(n * 3600)));
            prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Std::from_millis(n)));
            prop_assert_eq!(parse_size(&format!("{n}kB")), Ok(n * 1024));
            prop_assert_eq!(parse_size(&format!("{n}MB")), Ok(n << 20));
            prop_assert_eq!(parse_size(&format!("{n}GB")), Ok(n << 30));
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn display_parses_back(us in 0u64..1_000_000_000_000) {
            let d = Duration(Std::from_micros(us));
            prop_assert_eq!(parse_duration(&d.to_string()), Ok(d.0));
        }

        #[test]
        fn never_panics(s in ".{0,20}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }
    }
}
