//! Time as the core sees it: numbers handed in by the caller, never read from a clock.

use std::ops::{Add, Sub};

/// Milliseconds since the Unix epoch. Wall-clock, because scheduled switchovers and restarts are given as dates;
/// the runtime keeps it monotonic enough by reading it once per step.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

/// A span of time in milliseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs * 1000)
    }
}

impl Add<Millis> for Time {
    type Output = Time;
    fn add(self, rhs: Millis) -> Time {
        Time(self.0.saturating_add(i64::try_from(rhs.0).unwrap_or(i64::MAX)))
    }
}

impl Sub<Time> for Time {
    type Output = Millis;
    /// Elapsed time; zero when `rhs` is later (a clock step backwards must not look like a long wait).
    fn sub(self, rhs: Time) -> Millis {
        Millis(u64::try_from(self.0.saturating_sub(rhs.0)).unwrap_or(0))
    }
}
