//! Write-ahead log positions.
//!
//! PostgreSQL prints an LSN as two hex halves (`0/3000060`); Patroni's REST API and DCS keys carry it as a plain
//! integer. [`Lsn`] therefore serializes as an integer and accepts either form when reading.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A position in the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Bytes from `earlier` to `self`, zero when `earlier` is ahead (a lag can't be negative).
    pub fn saturating_sub(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    /// The WAL segment file name holding this position on `timeline`, e.g. `000000010000000000000003`.
    pub fn wal_file_name(self, timeline: u32, segment_size: u64) -> String {
        let segment_size = segment_size.max(1);
        let segno = self.0 / segment_size;
        let per_xlogid = 0x1_0000_0000u64 / segment_size;
        format!("{timeline:08X}{:08X}{:08X}", segno / per_xlogid.max(1), segno % per_xlogid.max(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || Error::parse("LSN", format!("`{s}` is not of the form X/Y (hex)"));
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(v: Lsn) -> Self {
        v.0
    }
}

impl From<postgres_types::PgLsn> for Lsn {
    fn from(v: postgres_types::PgLsn) -> Self {
        Lsn(u64::from(v))
    }
}

impl std::ops::Add<u64> for Lsn {
    type Output = Lsn;
    fn add(self, rhs: u64) -> Lsn {
        Lsn(self.0.saturating_add(rhs))
    }
}

impl std::ops::Sub for Lsn {
    type Output = i128;
    /// Signed distance in bytes; i128 so that any two LSNs can be compared without overflow.
    fn sub(self, rhs: Lsn) -> i128 {
        i128::from(self.0) - i128::from(rhs.0)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(v) => Ok(Lsn(v)),
            Repr::Text(t) => match t.parse::<u64>() {
                Ok(v) => Ok(Lsn(v)),
                Err(_) => t.parse::<Lsn>().map_err(serde::de::Error::custom),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_postgres_form() {
        let lsn: Lsn = "0/3000060".parse().unwrap();
        assert_eq!(lsn.0, 0x3000060);
        assert_eq!(lsn.to_string(), "0/3000060");
        let big: Lsn = "1A/FF000028".parse().unwrap();
        assert_eq!(big.0, (0x1A << 32) | 0xFF000028);
        assert_eq!(big.to_string(), "1A/FF000028");
        assert_eq!("16/b374d848".parse::<Lsn>().unwrap().to_string(), "16/B374D848");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "0", "/1", "1/", "g/1", "0/123456789", "0/1/2"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_and_order() {
        let a: Lsn = "0/3000060".parse().unwrap();
        let b = a + 0x20;
        assert!(b > a);
        assert_eq!(b - a, 0x20);
        assert_eq!(a - b, -0x20);
        assert_eq!(a.saturating_sub(b), 0);
        assert_eq!(b.saturating_sub(a), 0x20);
        assert_eq!(Lsn(u64::MAX) + 1, Lsn(u64::MAX));
    }

    #[test]
    fn serde_is_an_integer_like_patroni() {
        let lsn = Lsn(67109216);
        assert_eq!(serde_json::to_string(&lsn).unwrap(), "67109216");
        assert_eq!(serde_json::from_str::<Lsn>("67109216").unwrap(), lsn);
        assert_eq!(serde_json::from_str::<Lsn>("\"0/4000060\"").unwrap(), Lsn(0x4000060));
        assert_eq!(serde_json::from_str::<Lsn>("\"67109216\"").unwrap(), lsn);
    }

    #[test]
    fn wal_file_names() {
        let lsn: Lsn = "0/3000060".parse().unwrap();
        assert_eq!(lsn.wal_file_name(1, 16 << 20), "000000010000000000000003");
        let lsn: Lsn = "1/FF000000".parse().unwrap();
        assert_eq!(lsn.wal_file_name(2, 16 << 20), "0000000200000001000000FF");
    }
}
