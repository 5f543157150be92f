//! Times for people: ISO 8601 in UTC (`2026-11-25T04:34:02.321Z`), beside the numbers the
//! report keeps for machines.

/// Seconds since the epoch as ISO 8601 in UTC with `digits` decimals of the second (0 to 9;
/// cut, not rounded, as tcpdump and Wireshark show times), or nothing for a time that is not
/// one (negative, not finite, past year 9999).
pub fn iso8601(t: f64, digits: u32) -> Option<String> {
    if !t.is_finite() || !(0.0..253_402_300_800.0).contains(&t) {
        return None;
    }
    let digits = digits.min(9);
    // To the microsecond first, rounded: the nearest f64 to a capture's time may lie just
    // below it.
    let micros = (t * 1e6).round() as i64;
    let (secs, micros) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let fraction = match digits {
        0 => String::new(),
        n => {
            let nanos = format!("{:09}", micros * 1000);
            format!(".{}", &nanos[..n as usize])
        }
    };
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// [`iso8601`] to the microsecond (what a pcap holds), for report.json.
pub fn iso8601_us(t: f64) -> Option<String> {
    iso8601(t, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(iso8601(0.0, 3).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(1_764_045_437.25, 3).unwrap(),
            "2025-11-25T04:37:17.250Z"
        );
        assert_eq!(iso8601(951_782_400.0, 0).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(
            iso8601(4_102_444_799.999_999, 6).unwrap(),
            "2099-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            iso8601(253_402_300_799.0, 1).unwrap(),
            "9999-12-31T23:59:59.0Z"
        );
    }

    #[test]
    fn fractions_are_cut_and_the_float_is_read_to_the_microsecond() {
        // 1795581242.321456 is stored as 1795581242.3214559...: still .321456.
        let t = 1_795_581_242.321_456;
        assert_eq!(iso8601_us(t).unwrap(), "2026-11-25T04:34:02.321456Z");
        assert_eq!(iso8601(t, 3).unwrap(), "2026-11-25T04:34:02.321Z");
        assert_eq!(iso8601(1.999_9, 3).unwrap(), "1970-01-01T00:00:01.999Z");
        assert_eq!(iso8601(1.5, 9).unwrap(), "1970-01-01T00:00:01.500000000Z");
    }

    #[test]
    fn not_a_time_is_none() {
        for t in [-1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert_eq!(iso8601(t, 3), None, "{t}");
        }
    }
}
