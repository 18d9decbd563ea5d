//! Durations (`"500ms"`, `"10s"`, `"5m"`, `"1h"`, bare seconds) and sizes (`"512K"`, `"10M"`,
//! `"1G"` in powers of 1024, bare bytes), as SPEC §1 defines them.

use std::time::Duration;

/// Parses a duration string. Fractions are accepted (`"1.5s"`), negative values are not.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid duration `{s}` (expected e.g. \"500ms\", \"10s\", \"5m\", \"1h\")")
    })?;
    let factor = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit `{other}` in `{s}` (expected ms, s, m or h)"
            ));
        }
    };
    let secs = value * factor;
    if !secs.is_finite() || secs > 1.0e9 {
        return Err(format!("duration `{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size string in powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{s}` (expected e.g. \"512K\", \"10M\", \"1G\")"))?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" | "TIB" => 1024.0f64.powi(4),
        _ => {
            return Err(format!(
                "invalid size unit `{}` in `{s}` (expected K, M or G)",
                unit.trim()
            ));
        }
    };
    let bytes = (value * factor).round();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("size `{s}` is out of range"));
    }
    Ok(bytes as u64)
}

/// Formats a duration the way the file writes it (`"1.5s"`, `"100ms"`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Formats bytes for humans (`"512.0M"`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("3", 3000),
            ("1.5s", 1500),
            ("0", 0),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "ten", "5x", "-1s", "1.2.3s", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("512K", 512 * 1024),
            ("10M", 10 * 1024 * 1024),
            ("1G", 1024 * 1024 * 1024),
            ("100", 100),
            ("1.5K", 1536),
        ];
        for (s, b) in cases {
            assert_eq!(parse_size(s), Ok(b), "{s}");
        }
        for bad in ["", "big", "10X", "-5M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in ["100ms", "10s", "5m", "1h", "1500ms"] {
            let d = parse_duration(s).unwrap_or_default();
            assert_eq!(format_duration(d), s);
        }
    }
}
