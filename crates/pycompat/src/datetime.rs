//! `datetime.isoformat()`, `str(datetime)` and `datetime.fromisoformat()`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// `datetime.isoformat()`: `2023-09-24T10:36:00+02:00`, microseconds only when non-zero.
pub fn isoformat(t: &DateTime<FixedOffset>) -> String {
    isoformat_sep(t, 'T')
}

/// `str(datetime)`, which is `isoformat(' ')`: `2023-08-18 11:03:37.966359+00:00`.
pub fn str_datetime(t: &DateTime<FixedOffset>) -> String {
    isoformat_sep(t, ' ')
}

/// `datetime.isoformat(sep)`.
pub fn isoformat_sep(t: &DateTime<FixedOffset>, sep: char) -> String {
    let micros = t.timestamp_subsec_micros();
    let mut out = format!("{}{sep}{}", t.format("%Y-%m-%d"), t.format("%H:%M:%S"));
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    // Python shows an offset's seconds when it has any (`+01:30:15`); chrono's `%:z` would drop them.
    let secs = t.offset().local_minus_utc();
    let (sign, abs) = if secs < 0 { ('-', -secs) } else { ('+', secs) };
    out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60));
    if abs % 60 != 0 {
        out.push_str(&format!(":{:02}", abs % 60));
    }
    out
}

/// Reads a timestamp the way `datetime.fromisoformat()` (Python 3.11+) does, plus what people and older tools
/// write beside it: a `T`, `t` or space between date and time, a time of `HH:MM[:SS[.fff]]` or `HHMM[SS]` or
/// none (midnight), an offset of `Z`, `±HH`, `±HHMM`, `±HH:MM[:SS]`, optionally after a space. Returns the
/// wall-clock time and the offset when one was given: what a missing offset means (UTC, local time, an error)
/// is the caller's decision.
pub fn parse_datetime(input: &str) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let s = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.naive_local(), Some(*t.offset())));
    }
    let (date_part, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None => (s, ""),
    };
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
    let (time_part, offset_part) = match rest.find(['+', '-', 'Z', 'z']) {
        Some(i) => (rest[..i].trim(), Some(rest[i..].trim())),
        None => (rest.trim(), None),
    };
    let time = if time_part.is_empty() { NaiveTime::MIN } else { parse_time(time_part)? };
    let offset = match offset_part {
        Some(o) => Some(parse_offset(o)?),
        None => None,
    };
    Some((NaiveDateTime::new(date, time), offset))
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M", "%H%M%S", "%H%M"].iter().find_map(|f| NaiveTime::parse_from_str(s, f).ok())
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
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let (h, m, sec) = match digits.len() {
        2 => (num(0..2)?, 0, 0),
        4 => (num(0..2)?, num(2..4)?, 0),
        6 => (num(0..2)?, num(2..4)?, num(4..6)?),
        _ => return None,
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60 + sec))
}
