//! Sizes and durations in request parameters (`lag=10MB`, restart `timeout`).

/// A query or body value that is not a valid size or duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct UnitError {
    /// Which parameter.
    pub what: &'static str,
    /// The value received.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

const SIZE_UNITS: [(&str, f64); 5] =
    [("B", 1.0), ("kB", 1024.0), ("MB", 1_048_576.0), ("GB", 1_073_741_824.0), ("TB", 1_099_511_627_776.0)];

const TIME_UNITS: [(&str, f64); 6] =
    [("us", 0.000_001), ("ms", 0.001), ("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0)];

fn parse_with_units(value: &str, units: &[(&str, f64)], what: &'static str) -> Result<f64, UnitError> {
    let err = |reason| UnitError { what, value: value.to_owned(), reason };
    let s = value.trim();
    if s.is_empty() {
        return Err(err("empty value"));
    }
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| err("not a number"))?;
    if !n.is_finite() {
        return Err(err("not a number"));
    }
    if n < 0.0 {
        return Err(err("must not be negative"));
    }
    let unit = unit.trim();
    let factor = if unit.is_empty() {
        1.0
    } else {
        units.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f).ok_or_else(|| {
            err(if units.len() == SIZE_UNITS.len() {
                "unit must be one of B, kB, MB, GB, TB"
            } else {
                "unit must be one of us, ms, s, min, h, d"
            })
        })?
    };
    let v = (n * factor).round();
    if v >= u64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(v)
}

/// Parses a replication lag limit: bytes, or a number with `B`, `kB`, `MB`, `GB`, `TB`
/// (powers of 1024, case-sensitive as in PostgreSQL).
pub fn parse_lag(value: &str) -> Result<u64, UnitError> {
    parse_with_units(value, &SIZE_UNITS, "lag").map(|v| v as u64)
}

/// Parses a timeout in seconds (bare number) or with a PostgreSQL time unit.
pub fn parse_seconds(value: &str, what: &'static str) -> Result<f64, UnitError> {
    parse_with_units(value, &TIME_UNITS, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_values_from_the_documentation() {
        assert_eq!(parse_lag("1048576"), Ok(1_048_576));
        assert_eq!(parse_lag("1024kB"), Ok(1_048_576));
        assert_eq!(parse_lag("10MB"), Ok(10_485_760));
        assert_eq!(parse_lag("1GB"), Ok(1_073_741_824));
        assert_eq!(parse_lag("16kB"), Ok(16_384));
        assert_eq!(parse_lag(" 64 MB "), Ok(67_108_864));
        assert_eq!(parse_lag("1.5MB"), Ok(1_572_864));
        assert_eq!(parse_lag("0"), Ok(0));
    }

    #[test]
    fn bad_lag_values() {
        for bad in ["", "abc", "10M", "10mb", "-5", "1e", "MB", "1.2.3kB", "nan"] {
            assert!(parse_lag(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_lag("10XB").unwrap_err();
        assert_eq!(e.to_string(), "invalid lag \"10XB\": unit must be one of B, kB, MB, GB, TB");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_seconds("30", "timeout"), Ok(30.0));
        assert_eq!(parse_seconds("2min", "timeout"), Ok(120.0));
        assert!(parse_seconds("2 weeks", "timeout").is_err());
    }
}
