//! Durations and sizes as people write them: `"250ms"`, `"1m 30s"`,
//! `"16MiB"`, `"512KB"`.

use std::time::Duration;

use super::error::Problem;
use super::raw::Quantity;

/// The longest duration any key accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A humantime duration. A bare number is refused, because `100` could be
/// milliseconds or seconds; the message suggests both.
pub fn duration(quantity: &Quantity) -> Result<Duration, Problem> {
    match quantity {
        Quantity::Integer(n) => Err(Problem::BareDuration { written: n.to_string(), number: n.to_string() }),
        Quantity::Float(n) => Err(Problem::BareDuration { written: n.to_string(), number: n.to_string() }),
        Quantity::Text(text) => {
            let trimmed = text.trim();
            if trimmed.starts_with('-') {
                return Err(Problem::Duration { text: text.clone(), reason: "it is negative".to_owned() });
            }
            if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return Err(Problem::BareDuration { written: format!("{text:?}"), number: trimmed.to_owned() });
            }
            let parsed = humantime::parse_duration(trimmed)
                .map_err(|e| Problem::Duration { text: text.clone(), reason: e.to_string() })?;
            // Far beyond any sensible timeout or backoff, and small enough
            // that arithmetic on it (a batch's deadline, `init`'s) cannot overflow.
            if parsed > MAX_DURATION {
                return Err(Problem::Duration {
                    text: text.clone(),
                    reason: "it is longer than 30 days, the most any sluice duration may be".to_owned(),
                });
            }
            Ok(parsed)
        }
    }
}

/// A size in bytes: a bytesize string (`"16MiB"`, `"512 KB"`; KB is 1000
/// bytes, KiB 1024) or a plain integer number of bytes.
pub fn size(quantity: &Quantity) -> Result<u64, Problem> {
    match quantity {
        Quantity::Integer(n) => u64::try_from(*n).map_err(|_| Problem::NotPositive(n.to_string())),
        Quantity::Float(n) => Err(Problem::Size {
            text: n.to_string(),
            reason: "a fractional number of bytes; give a whole number or a unit".to_owned(),
        }),
        Quantity::Text(text) => {
            let trimmed = text.trim();
            let bad = |reason: &str| Problem::Size { text: text.clone(), reason: reason.to_owned() };
            if trimmed.starts_with('-') {
                return Err(bad("it is negative"));
            }
            if trimmed.is_empty() {
                return Err(bad("it is empty"));
            }
            if !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad("it does not start with a number"));
            }
            let unit = trimmed.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.').trim();
            let parsed: bytesize::ByteSize = trimmed
                .parse()
                .map_err(|_| bad(&format!("unknown unit \"{unit}\"; use B, KB, KiB, MB, MiB, GB or GiB")))?;
            if parsed.as_u64() == u64::MAX {
                return Err(bad("it is too large"));
            }
            Ok(parsed.as_u64())
        }
    }
}

/// A duration as the config would write it, for messages and reports.
pub fn show_duration(duration: Duration) -> String {
    if duration.is_zero() { "0s".to_owned() } else { humantime::format_duration(duration).to_string() }
}

/// A size as the config would write it: the largest binary unit that
/// divides it exactly, so `16777216` shows as `16MiB`.
pub fn show_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];
    UNITS
        .iter()
        .find(|(_, factor)| bytes != 0 && bytes.is_multiple_of(*factor))
        .map_or_else(|| "0B".to_owned(), |(unit, factor)| format!("{}{unit}", bytes / factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Quantity {
        Quantity::Text(s.to_owned())
    }

    #[test]
    fn durations_take_humantime_text() {
        assert_eq!(duration(&text("250ms")).unwrap(), Duration::from_millis(250));
        assert_eq!(duration(&text("1m 30s")).unwrap(), Duration::from_secs(90));
        assert_eq!(duration(&text(" 2h ")).unwrap(), Duration::from_secs(7200));
        assert_eq!(duration(&text("0s")).unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_say_why() {
        let message = |q: Quantity| duration(&q).unwrap_err().to_string();
        assert_eq!(
            message(Quantity::Integer(100)),
            "100 is a bare number; write a duration with a unit, such as \"100ms\" or \"100s\""
        );
        assert!(
            message(text("10 parsecs")).starts_with("\"10 parsecs\" is not a duration: unknown time unit \"parsecs\"")
        );
        assert_eq!(
            message(text("100")),
            "\"100\" is a bare number; write a duration with a unit, such as \"100ms\" or \"100s\""
        );
        assert!(message(text("-5s")).contains("it is negative"));
        assert!(message(text("")).contains("is not a duration"));
        assert!(message(Quantity::Float(1.5)).starts_with("1.5 is a bare number"));
    }

    #[test]
    fn sizes_take_units_or_bytes() {
        assert_eq!(size(&text("16MiB")).unwrap(), 16 << 20);
        assert_eq!(size(&text("512KB")).unwrap(), 512_000);
        assert_eq!(size(&text("512 KiB")).unwrap(), 512 << 10);
        assert_eq!(size(&text("1.5GiB")).unwrap(), 3 << 29);
        assert_eq!(size(&text("4096")).unwrap(), 4096);
        assert_eq!(size(&Quantity::Integer(65536)).unwrap(), 65536);
    }

    #[test]
    fn bad_sizes_say_why() {
        let message = |q: Quantity| size(&q).unwrap_err().to_string();
        assert!(message(text("16 MeB")).contains("unknown unit \"MeB\""), "{}", message(text("16 MeB")));
        assert!(message(text("-1MiB")).contains("it is negative"));
        assert!(message(text("lots")).contains("does not start with a number"));
        assert_eq!(message(Quantity::Integer(-1)), "must be greater than zero, got -1");
        assert!(message(Quantity::Float(1.5)).contains("fractional"));
        assert!(message(text("99999999999EiB")).contains("too large"));
    }

    #[test]
    fn shown_values_read_like_config() {
        assert_eq!(show_duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(show_duration(Duration::ZERO), "0s");
        assert_eq!(show_size(16 << 20), "16MiB");
        assert_eq!(show_size(512_000), "500KiB");
        assert_eq!(show_size(1000), "1000B");
        assert_eq!(show_size(0), "0B");
    }
}
