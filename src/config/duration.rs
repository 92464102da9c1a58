//! Human durations in configuration: `"500ms"`, `"30s"`, `"30m"`, `"1h30m"`, `"7d"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from a string such as `"30m"` or `"1h30m"`.
///
/// Units: `us`, `ms`, `s`, `m`, `h`, `d`. Zero is rejected where a TTL is
/// expected, by the caller. At most [`ConfigDuration::MAX`] (100 years):
/// longer ones are errors, so no timeout or TTL from a file can overflow
/// the clock arithmetic of a store or its driver.
///
/// ```
/// use polyrouter::config::ConfigDuration;
/// assert_eq!("1h30m".parse::<ConfigDuration>().unwrap().0.as_secs(), 5400);
/// assert!("30 minutes".parse::<ConfigDuration>().is_err());
/// assert!("36500d".parse::<ConfigDuration>().is_ok());
/// assert!("36501d".parse::<ConfigDuration>().is_err());
/// assert!("18446744073709551615s".parse::<ConfigDuration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// The longest duration a configuration may give: 100 years of 365
    /// days (`"36500d"`).
    ///
    /// ```
    /// use polyrouter::config::ConfigDuration;
    /// assert_eq!(ConfigDuration::MAX.as_secs(), 36_500 * 86_400);
    /// ```
    pub const MAX: Duration = Duration::from_secs(36_500 * 86_400);
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a duration; write e.g. \"500ms\", \"30s\", \"30m\", \"1h30m\" or \"7d\""
            )
        };
        let too_long =
            || format!("{s:?} is longer than a duration may be: at most \"36500d\" (100 years)");
        let mut total = Duration::ZERO;
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
            rest = &rest[digits..];
            let unit = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let part = match &rest[..unit] {
                "us" => Duration::from_micros(n),
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_long)?),
                "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_long)?),
                "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(too_long)?),
                _ => return Err(bad()),
            };
            total = total
                .checked_add(part)
                .filter(|t| *t <= Self::MAX)
                .ok_or_else(too_long)?;
            rest = &rest[unit..];
        }
        Ok(ConfigDuration(total))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
