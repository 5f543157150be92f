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

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm, the inverse of the one in
/// [`iso8601`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as `--start` and `--end` take it (and editcap's `-A`/`-B`): ISO 8601 with `Z` or
/// an offset (`2026-11-25T04:34:03Z`, `2026-11-25T05:34:03.25+01:00`; a space may stand for
/// the `T`), or seconds since the epoch (`1795581243.25`). A time without a zone is refused:
/// local time would make the same command mean different packets on different machines.
pub fn parse_time(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{t}: not a number of seconds"));
    }
    let bad = |why: &str| {
        format!(
            "{t}: {why} (give 2026-11-25T04:34:03Z, an offset such as +01:00, or epoch seconds)"
        )
    };
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad("not an ISO 8601 date and time"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad("not an ISO 8601 date and time"));
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad("not an ISO 8601 date and time"));
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[mo as usize - 1] || h > 23 || mi > 59 {
        return Err(bad("no such date or time"));
    }
    if s > 59 {
        return Err(bad("no such date or time"));
    }
    let mut i = 19;
    let mut fraction = 0.0;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(bad("a fraction of a second has 1 to 9 digits"));
        }
        fraction = format!("0.{}", &t[start..i]).parse().unwrap_or(0.0);
    }
    let offset = match &t[i..] {
        "Z" | "z" => 0,
        "" => return Err(bad("no time zone")),
        zone => {
            let z = zone.as_bytes();
            let sign = match z[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad("not a time zone")),
            };
            let (zh, zm) = match z.len() {
                6 if z[3] == b':' => (num(i + 1..i + 3), num(i + 4..i + 6)),
                5 => (num(i + 1..i + 3), num(i + 3..i + 5)),
                3 => (num(i + 1..i + 3), Some(0)),
                _ => (None, None),
            };
            match (zh, zm) {
                (Some(zh), Some(zm)) if zh <= 23 && zm <= 59 => sign * (zh * 3600 + zm * 60),
                _ => return Err(bad("not a time zone")),
            }
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    if secs < 0 {
        return Err(bad("before 1970"));
    }
    Ok(secs as f64 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_start_and_end_take_them() {
        let t = 1_795_581_243.25;
        for text in [
            "2026-11-25T04:34:03.25Z",
            "2026-11-25 04:34:03.250000Z",
            "2026-11-25T05:34:03.25+01:00",
            "2026-11-24T23:04:03.25-0530",
            "2026-11-25T06:34:03.25+02",
            "1795581243.25",
        ] {
            let got = parse_time(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!((got - t).abs() < 1e-6, "{text}: {got}");
        }
        // The inverse of the report's times, on every kind of date.
        for t in [0.0, 951_782_400.0, 1_764_045_437.5, 4_102_444_799.0] {
            let text = iso8601_us(t).unwrap();
            assert!((parse_time(&text).unwrap() - t).abs() < 1e-6, "{text}");
        }
        for bad in [
            "2026-11-25T04:34:03",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T04:34:03.Z",
            "2026-11-25T04:34:03+1:00",
            "yesterday",
            "",
            "1.2.3",
            "2026-11-25",
            "２026-11-25T04:34:03Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

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
