//! Timestamps given to `scheduled_at` and `schedule`: ISO 8601 with a mandatory UTC offset.
//!
//! `patronictl` and users send forms like `2019-09-24T12:00+00`, `2023-04-14T20:27:00+00:00`,
//! `2023-04-14 20:27:00.5Z`; all of them are accepted here.

use crate::status::Timestamp;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// Why a schedule was refused, with the status code and text Patroni answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// No UTC offset: 400.
    NoTimezone,
    /// Before now: 422.
    InThePast,
    /// Not a timestamp: 422.
    Unparsable,
}

impl ScheduleError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoTimezone => 400,
            Self::InThePast | Self::Unparsable => 422,
        }
    }

    /// Response text for the scheduled `action` (`switchover`, `restart`).
    pub fn message(&self, action: &str) -> String {
        match self {
            Self::NoTimezone => format!("Timezone information is mandatory for the scheduled {action}"),
            Self::InThePast => format!("Cannot schedule {action} in the past"),
            Self::Unparsable => {
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601".to_owned()
            }
        }
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" || s == "z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M", "%H%M%S", "%H%M"].iter().find_map(|f| NaiveTime::parse_from_str(s, f).ok())
}

/// Parses a timestamp; `Ok(None)`-free: a missing offset is its own error.
pub fn parse_timestamp(input: &str) -> Result<Timestamp, ScheduleError> {
    let s = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let (date_part, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None => (s, ""),
    };
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| ScheduleError::Unparsable)?;
    // The offset starts at the first sign or `Z` after the time.
    let tz_at = rest.find(['+', '-', 'Z', 'z']);
    let (time_part, tz_part) = match tz_at {
        Some(i) => (rest[..i].trim(), Some(rest[i..].trim())),
        None => (rest.trim(), None),
    };
    let time =
        if time_part.is_empty() { NaiveTime::MIN } else { parse_time(time_part).ok_or(ScheduleError::Unparsable)? };
    let naive = NaiveDateTime::new(date, time);
    let Some(tz) = tz_part else {
        return Err(ScheduleError::NoTimezone);
    };
    let offset = parse_offset(tz).ok_or(ScheduleError::Unparsable)?;
    naive.and_local_timezone(offset).single().ok_or(ScheduleError::Unparsable)
}

/// Parses and checks a schedule is not in the past (relative to `now`).
pub fn parse_schedule(input: &str, now: DateTime<Utc>) -> Result<Timestamp, ScheduleError> {
    let t = parse_timestamp(input)?;
    if t < now {
        return Err(ScheduleError::InThePast);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn accepted_forms() {
        for (s, expect) in [
            ("2030-09-24T12:00+00", "2030-09-24T12:00:00+00:00"),
            ("2030-04-14T20:27:00+00:00", "2030-04-14T20:27:00+00:00"),
            ("2030-04-14 20:27:00+02:00", "2030-04-14T20:27:00+02:00"),
            ("2030-04-14T20:27:00Z", "2030-04-14T20:27:00+00:00"),
            ("2030-04-14T20:27:00.250-0530", "2030-04-14T20:27:00.250-05:30"),
        ] {
            let t = parse_schedule(s, now()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
            assert_eq!(t, DateTime::parse_from_rfc3339(expect).unwrap(), "{s}");
        }
    }

    #[test]
    fn refused_forms() {
        assert_eq!(parse_schedule("2030-04-14T20:27:00", now()), Err(ScheduleError::NoTimezone));
        assert_eq!(parse_schedule("2030-04-14", now()), Err(ScheduleError::NoTimezone));
        assert_eq!(parse_schedule("2010-04-14T20:27:00+00", now()), Err(ScheduleError::InThePast));
        for bad in ["tomorrow", "", "2030-13-01T00:00+00", "2030-04-14T25:00+00", "2030-04-14T20:00+99"] {
            assert_eq!(parse_schedule(bad, now()), Err(ScheduleError::Unparsable), "{bad}");
        }
        assert_eq!(ScheduleError::NoTimezone.status(), 400);
        assert_eq!(ScheduleError::InThePast.message("switchover"), "Cannot schedule switchover in the past");
    }
}
