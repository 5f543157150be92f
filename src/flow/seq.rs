//! TCP sequence numbers with wrap-aware arithmetic (RFC 1982 serial numbers).

/// Signed distance from `from` to `to` in sequence space: positive when `to` is later.
pub fn diff(to: u32, from: u32) -> i64 {
    to.wrapping_sub(from) as i32 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_handles_wrap() {
        assert_eq!(diff(5, 3), 2);
        assert_eq!(diff(3, 5), -2);
        assert_eq!(diff(2, u32::MAX - 1), 4);
        assert_eq!(diff(u32::MAX - 1, 2), -4);
    }
}
