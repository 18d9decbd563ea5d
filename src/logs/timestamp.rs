//! RFC 3339 UTC timestamps with milliseconds, formatted without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a formatted timestamp: `2026-11-27T03:50:01.123Z`.
pub(crate) const TS_LEN: usize = 24;

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). Times before 1970 are clamped to the epoch.
pub fn format_rfc3339_millis(t: SystemTime) -> String {
    String::from_utf8(format_bytes(t).to_vec()).expect("ascii")
}

pub(crate) fn format_bytes(t: SystemTime) -> [u8; TS_LEN] {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    put(&mut out[0..4], y.clamp(0, 9999) as u64);
    put(&mut out[5..7], mo as u64);
    put(&mut out[8..10], d as u64);
    put(&mut out[11..13], sod / 3600);
    put(&mut out[14..16], sod / 60 % 60);
    put(&mut out[17..19], sod % 60);
    put(&mut out[20..23], millis as u64);
    out
}

/// Whether `line` starts with a timestamp in the shape [`format_bytes`] produces.
pub(crate) fn has_timestamp(line: &[u8]) -> bool {
    const SHAPE: &[u8; TS_LEN] = b"0000-00-00T00:00:00.000Z";
    line.len() >= TS_LEN
        && line[..TS_LEN].iter().zip(SHAPE).all(|(c, s)| {
            if *s == b'0' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

fn put(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let cases: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
            (1_798_343_401, 123, "2026-12-27T03:50:01.123Z"),
            (1_795_751_401, 999, "2026-11-27T03:50:01.999Z"),
            (4_102_444_799, 0, "2099-12-31T23:59:59.000Z"),
        ];
        for &(secs, ms, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms.into());
            assert_eq!(format_rfc3339_millis(t), want, "secs={secs}");
            assert!(has_timestamp(want.as_bytes()));
        }
        assert!(!has_timestamp(b"2026-11-27 03:50:01.999Z"));
        assert!(!has_timestamp(b"short"));
    }
}
