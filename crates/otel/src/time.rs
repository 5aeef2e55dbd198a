//! Unix times written as RFC 3339 UTC without a date-time crate: the timestamps of log lines
//! and of the artifact cache's sidecars.

/// The civil (proleptic Gregorian, UTC) date of a day counted from 1970-01-01, as
/// (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix time in seconds (UTC): the start of every log line's
/// timestamp.
pub fn timestamp_prefix(unix_seconds: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days(unix_seconds / 86_400);
    let in_day = unix_seconds % 86_400;
    let mut out = *b"0000-00-00T00:00:00.";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], month);
    put_digits(&mut out[8..10], day);
    put_digits(&mut out[11..13], in_day / 3600);
    put_digits(&mut out[14..16], in_day / 60 % 60);
    put_digits(&mut out[17..19], in_day % 60);
    out
}

/// Writes `value`'s last `digits.len()` decimal digits into `digits`, zero-padded.
pub fn put_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// A Unix time in seconds as RFC 3339 UTC, to the second (`2026-11-26T10:17:07Z`).
pub fn rfc3339_seconds(unix_seconds: u64) -> String {
    let prefix = timestamp_prefix(unix_seconds);
    // The prefix is ASCII; its last byte is the '.' before the fraction.
    let mut text = String::from_utf8_lossy(&prefix[..19]).into_owned();
    text.push('Z');
    text
}
