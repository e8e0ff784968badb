//! Numbers as events carry them: JSON numbers, or numeric text, because
//! records converted from CSV hold every cell as a string ("20.3").

use std::cmp::Ordering;

use serde_json::Value;

/// A finite number. Whole numbers keep their exact value so that large ids
/// compare exactly; anything else compares as `f64`.
#[derive(Debug, Clone, Copy)]
pub struct Number {
    float: f64,
    whole: Option<i128>,
}

impl Number {
    /// Reads a JSON number, or a string holding one (surrounding spaces
    /// allowed). Anything else, including `"NaN"` and `"inf"`, is `None`.
    pub fn of(value: &Value) -> Option<Number> {
        match value {
            Value::Number(n) => {
                let whole = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
                let float = n.as_f64()?;
                Some(Number { float, whole })
            }
            Value::String(s) => Number::parse(s),
            _ => None,
        }
    }

    fn parse(text: &str) -> Option<Number> {
        let text = text.trim();
        if let Ok(whole) = text.parse::<i128>() {
            // Past 2^53 `as f64` rounds, which is why two whole numbers
            // compare by `whole` instead.
            return Some(Number { float: whole as f64, whole: Some(whole) });
        }
        // Rust also accepts "inf", "NaN" and "infinity", which no sensor or
        // form means as a number.
        let float = text.parse::<f64>().ok().filter(|f| f.is_finite())?;
        Some(Number { float, whole: None })
    }

    pub fn from_f64(float: f64) -> Number {
        Number { float, whole: None }
    }

    /// Numeric equality: `"20.30"`, `20.3` and `20.3e0` are all equal.
    pub fn equals(&self, other: &Number) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }

    pub fn compare(&self, other: &Number) -> Option<Ordering> {
        match (self.whole, other.whole) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => self.float.partial_cmp(&other.float),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(value: Value) -> Option<Number> {
        Number::of(&value)
    }

    #[test]
    fn numbers_and_numeric_text_are_read_alike() {
        let sentinel = Number::from_f64(-99999.992);
        assert!(num(json!("-99999.992")).is_some_and(|n| n.equals(&sentinel)));
        assert!(num(json!(-99999.992)).is_some_and(|n| n.equals(&sentinel)));
        assert!(num(json!(" 20.30 ")).is_some_and(|n| n.equals(&Number::from_f64(20.3))));
        assert!(num(json!("-100000")).is_some_and(|n| n.equals(&Number::from_f64(-100000.0))));
    }

    #[test]
    fn text_that_is_not_a_finite_number_is_refused() {
        for text in ["", "  ", "abc", "NaN", "inf", "-infinity", "1,5", "0x10"] {
            assert!(num(json!(text)).is_none(), "{text:?}");
        }
        assert!(num(json!(true)).is_none());
        assert!(num(json!(null)).is_none());
        assert!(num(json!([1])).is_none());
    }

    #[test]
    fn large_whole_numbers_compare_exactly() {
        let a = num(json!(2489651390123456789_u64));
        let b = num(json!("2489651390123456788"));
        assert!(a.zip(b).is_some_and(|(a, b)| a.compare(&b) == Some(Ordering::Greater)));
    }
}
