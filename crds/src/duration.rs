//! Human-friendly durations for policy fields: `90d`, `1y`, `36h`, `30m`.
//!
//! Kubernetes' own `metav1.Duration` stops at hours, which makes key
//! cryptoperiods unreadable (`8760h`). This type adds days and years.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units, largest first; a year is 365 days and a month is not offered
/// because `m` already means minutes.
const UNITS: [(&str, u64); 5] = [
    ("y", 365 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

/// OpenAPI pattern accepted by the API server for every duration field.
pub const DURATION_PATTERN: &str = "^([0-9]+(y|d|h|m|s))+$";

const HINT: &str = "write a whole number followed by a unit (y, d, h, m or s), e.g. `90d`, `1y`, `36h`, `30m` or `1d12h`";

/// A non-negative duration written as one or more `<number><unit>` parts.
///
/// Units: `y` (365 days), `d`, `h`, `m` (minutes), `s`. Parts may be combined
/// (`1d12h`). It is displayed in the largest unit that divides it exactly,
/// so `36h` stays `36h` and `730d` becomes `2y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration {
    secs: u64,
}

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self { secs }
    }

    /// A duration of whole days.
    pub const fn from_days(days: u64) -> Self {
        Self {
            secs: days * 86_400,
        }
    }

    /// A duration of whole 365-day years.
    pub const fn from_years(years: u64) -> Self {
        Self {
            secs: years * 365 * 86_400,
        }
    }

    /// Length in seconds.
    pub const fn as_secs(self) -> u64 {
        self.secs
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.secs == 0
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        Duration::from_secs(d.secs)
    }
}

/// Why a duration string was refused; every message says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// The string was empty.
    #[error("empty duration: {HINT}")]
    Empty,
    /// A part had digits but no unit after them (`90`).
    #[error("duration `{input}` has no unit after `{number}`: {HINT}")]
    MissingUnit {
        /// The whole input.
        input: String,
        /// The digits without a unit.
        number: String,
    },
    /// A unit did not follow a number (`d`, `1d h`).
    #[error("duration `{input}` has no number before `{found}`: {HINT}")]
    MissingNumber {
        /// The whole input.
        input: String,
        /// Where the number was expected.
        found: String,
    },
    /// Unknown unit (`90x`, `1mo`, `2 weeks`).
    #[error("duration `{input}` uses unknown unit `{unit}`: {HINT}")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit that was not understood.
        unit: String,
    },
    /// The value does not fit in 64 bits of seconds.
    #[error("duration `{input}` is too large")]
    Overflow {
        /// The whole input.
        input: String,
    },
}

impl FromStr for HumanDuration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ParseDurationError::Empty);
        }
        let overflow = || ParseDurationError::Overflow {
            input: input.to_owned(),
        };
        let mut rest = input;
        let mut secs: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(ParseDurationError::MissingNumber {
                    input: input.to_owned(),
                    found: rest.chars().take(8).collect(),
                });
            }
            let (number, after) = rest.split_at(digits);
            let unit_len = after.bytes().take_while(|b| !b.is_ascii_digit()).count();
            let (unit, after) = after.split_at(unit_len);
            if unit.is_empty() {
                return Err(ParseDurationError::MissingUnit {
                    input: input.to_owned(),
                    number: number.to_owned(),
                });
            }
            let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
                return Err(ParseDurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            };
            let value: u64 = number.parse().map_err(|_| overflow())?;
            secs = value
                .checked_mul(scale)
                .and_then(|part| secs.checked_add(part))
                .ok_or_else(overflow)?;
            rest = after;
        }
        Ok(Self { secs })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, scale)| self.secs.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("s", 1));
        write!(f, "{}{unit}", self.secs / scale)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<HumanDuration, ParseDurationError> {
        s.parse()
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("90d").unwrap(), HumanDuration::from_days(90));
        assert_eq!(parse("1y").unwrap(), HumanDuration::from_days(365));
        assert_eq!(parse("36h").unwrap().as_secs(), 36 * 3600);
        assert_eq!(parse("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse("45s").unwrap().as_secs(), 45);
        assert_eq!(parse("1d12h").unwrap().as_secs(), 36 * 3600);
        assert_eq!(parse("0d").unwrap(), HumanDuration::from_secs(0));
    }

    #[test]
    fn displays_in_largest_exact_unit() {
        for (input, shown) in [
            ("36h", "36h"),
            ("90d", "90d"),
            ("730d", "2y"),
            ("1d12h", "36h"),
            ("120m", "2h"),
            ("61s", "61s"),
            ("0h", "0s"),
        ] {
            assert_eq!(parse(input).unwrap().to_string(), shown, "{input}");
        }
    }

    #[test]
    fn display_round_trips() {
        for secs in [
            0,
            1,
            59,
            60,
            3600,
            86_400,
            90 * 86_400,
            365 * 86_400,
            12_345,
        ] {
            let d = HumanDuration::from_secs(secs);
            assert_eq!(parse(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        let cases = [
            ("", "empty duration"),
            ("90", "has no unit after `90`"),
            ("d", "has no number before `d`"),
            ("90x", "unknown unit `x`"),
            ("1mo", "unknown unit `mo`"),
            ("2 weeks", "unknown unit ` weeks`"),
            ("-1d", "has no number before `-1d`"),
            ("99999999999999999999y", "too large"),
            ("60000000000000y", "too large"),
        ];
        for (input, expected) in cases {
            let message = parse(input).unwrap_err().to_string();
            assert!(message.contains(expected), "{input:?}: {message}");
            if !message.contains("too large") {
                assert!(message.contains("e.g. `90d`"), "{input:?}: {message}");
            }
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let d: HumanDuration = serde_json::from_str("\"1y\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1y\"");
        let err = serde_json::from_str::<HumanDuration>("\"1 year\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit ` year`"), "{err}");
    }
}
