//! Resource quantities (`500m`, `1.5Gi`, `1e3`) parsed exactly and written
//! back in upstream's canonical form: the same suffix family as written
//! (binary, decimal SI or decimal exponent), the largest suffix that keeps
//! the number whole, precision down to nano units (smaller values round up).

/// Upstream's error for text that is not a quantity.
pub const FORMAT_ERROR: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// An exact decimal `mantissa × 10^exp` and the suffix family it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp: i32,
    format: Format,
}

const BINARY: [(&str, u32); 6] = [("Ki", 1), ("Mi", 2), ("Gi", 3), ("Ti", 4), ("Pi", 5), ("Ei", 6)];
const DECIMAL: [(&str, i32); 9] = [("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15)];

fn err() -> String {
    FORMAT_ERROR.to_string()
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let s = s.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        // A sign may only lead the number; "1e-3" puts it in the suffix.
        let (neg, digits) = match num.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, num.strip_prefix('+').unwrap_or(num)),
        };
        if digits.is_empty() || digits.contains(['+', '-']) || digits.matches('.').count() > 1 || digits == "." {
            return Err(err());
        }
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(frac.chars()) {
            mantissa = mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(c as u8 - b'0'))).ok_or_else(err)?;
        }
        let mut exp = -(frac.len() as i32);
        let format = if let Some(&(_, k)) = BINARY.iter().find(|(sfx, _)| *sfx == suffix) {
            mantissa = mantissa.checked_mul(1024i128.pow(k)).ok_or_else(err)?;
            Format::BinarySi
        } else if let Some(&(_, e)) = DECIMAL.iter().find(|(sfx, _)| *sfx == suffix).or(if suffix == "E" { Some(&("E", 18)) } else { None }) {
            exp += e;
            Format::DecimalSi
        } else if let Some(e) = suffix.strip_prefix(['e', 'E']) {
            exp += e.parse::<i32>().map_err(|_| err())?;
            Format::DecimalExponent
        } else {
            return Err(err());
        };
        if neg {
            mantissa = -mantissa;
        }
        let mut q = Quantity { mantissa, exp, format };
        q.normalise();
        Ok(q)
    }

    /// Strips trailing zeros into the exponent and rounds up below nano units.
    fn normalise(&mut self) {
        if self.mantissa == 0 {
            self.exp = 0;
            return;
        }
        let sign = self.mantissa.signum();
        let mut inexact = false;
        while self.exp < -9 {
            inexact |= self.mantissa % 10 != 0;
            self.mantissa /= 10;
            self.exp += 1;
        }
        if inexact {
            self.mantissa += sign;
        }
        while self.mantissa % 10 == 0 && self.mantissa != 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
    }

    /// Zero, written as a plain number.
    pub fn zero() -> Quantity {
        Quantity { mantissa: 0, exp: 0, format: Format::DecimalSi }
    }

    /// The exact sum, written in the suffix family of `self` (of `other`
    /// when `self` is zero), as upstream's `Quantity.Add`.
    pub fn add(&self, other: &Quantity) -> Quantity {
        let exp = self.exp.min(other.exp);
        let scale = |q: &Quantity| q.mantissa.saturating_mul(10i128.saturating_pow((q.exp - exp) as u32));
        let format = if self.mantissa == 0 { other.format } else { self.format };
        let mut q = Quantity { mantissa: scale(self).saturating_add(scale(other)), exp, format };
        q.normalise();
        q
    }

    /// Compares the values.
    pub fn value_cmp(&self, other: &Quantity) -> std::cmp::Ordering {
        let exp = self.exp.min(other.exp);
        let scale = |q: &Quantity| q.mantissa.saturating_mul(10i128.saturating_pow((q.exp - exp) as u32));
        scale(self).cmp(&scale(other))
    }

    /// The whole value when it has no fractional part.
    fn integer(&self) -> Option<i128> {
        if self.exp < 0 {
            return None;
        }
        self.mantissa.checked_mul(10i128.checked_pow(self.exp as u32)?)
    }

    /// Upstream's canonical text.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".into();
        }
        if self.format == Format::BinarySi
            && let Some(v) = self.integer()
        {
            if v.abs() < 1024 {
                return v.to_string();
            }
            let (sfx, k) = BINARY.iter().rev().find(|(_, k)| v % 1024i128.pow(*k) == 0).copied().unwrap_or(("", 0));
            return format!("{}{sfx}", v / 1024i128.pow(k));
        }
        // The largest multiple of three at or below the exponent, within n..E.
        let target = (self.exp.div_euclid(3) * 3).clamp(-9, 18);
        let m = self.mantissa * 10i128.pow((self.exp - target).max(0) as u32);
        match self.format {
            Format::DecimalExponent => {
                if target == 0 {
                    m.to_string()
                } else {
                    format!("{m}e{target}")
                }
            }
            _ => {
                let sfx = DECIMAL.iter().find(|(_, e)| *e == target).map(|(s, _)| *s).unwrap_or("E");
                format!("{m}{sfx}")
            }
        }
    }
}

/// The canonical form of a quantity written as text or as a JSON number.
pub fn canonical(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(Quantity::parse(s)?.canonical()),
        serde_json::Value::Number(n) => Ok(Quantity::parse(&n.to_string())?.canonical()),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("100Mi", "100Mi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("12e2", "1200"),
            ("0", "0"),
            ("0m", "0"),
            ("-1500m", "-1500m"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1k", "1k"),
            ("3G", "3G"),
            (".5", "500m"),
            ("+2", "2"),
        ] {
            assert_eq!(Quantity::parse(input).map(|q| q.canonical()).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        for bad in ["", "abc", "1x", "1.2.3", "--1", "Mi", "1Kib", "1e", "."] {
            assert_eq!(Quantity::parse(bad), Err(FORMAT_ERROR.to_string()), "{bad:?}");
        }
        assert_eq!(canonical(&serde_json::json!(2)), Ok("2".into()));
        assert_eq!(canonical(&serde_json::json!(0.25)), Ok("250m".into()));
    }

    #[test]
    fn sums_and_comparisons() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("500m").add(&q("1")).canonical(), "1500m");
        assert_eq!(q("128Mi").add(&q("128Mi")).canonical(), "256Mi");
        assert_eq!(Quantity::zero().add(&q("1Gi")).canonical(), "1Gi");
        assert_eq!(q("1").add(&q("1")).canonical(), "2");
        assert_eq!(q("1Gi").value_cmp(&q("1024Mi")), std::cmp::Ordering::Equal);
        assert_eq!(q("999m").value_cmp(&q("1")), std::cmp::Ordering::Less);
        assert_eq!(q("2").value_cmp(&q("1500m")), std::cmp::Ordering::Greater);
    }
}
