//! Timestamps given to `scheduled_at` and `schedule`: ISO 8601 with a mandatory UTC offset.
//!
//! `patronictl` and users send forms like `2019-09-24T12:00+00`, `2023-04-14T20:27:00+00:00`,
//! `2023-04-14 20:27:00.5Z`; all of them are accepted here.

use crate::status::Timestamp;
use chrono::{DateTime, Utc};

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

/// Parses a timestamp; an offset is mandatory (its absence is its own error).
pub fn parse_timestamp(input: &str) -> Result<Timestamp, ScheduleError> {
    let (naive, offset) = patroni_pycompat::parse_datetime(input).ok_or(ScheduleError::Unparsable)?;
    let offset = offset.ok_or(ScheduleError::NoTimezone)?;
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
