//! The terminal: one status line on standard error (read's progress, live's counters), kept
//! within the terminal's width and redrawn in place by indicatif, shown only when standard
//! error is a terminal.

use std::io::IsTerminal;

/// One piece of a status line, in the forms it can take from the longest down; an empty form
/// leaves the piece out. `rank` says how much it matters: 0 most.
pub struct Part {
    pub forms: Vec<String>,
    pub rank: u8,
}

impl Part {
    pub fn new(rank: u8, forms: &[&str]) -> Self {
        Part {
            forms: forms.iter().map(|f| f.to_string()).collect(),
            rank,
        }
    }
}

/// The parts, in their order, joined by two spaces, in at most `width - 1` columns (the
/// last column is left free, so the cursor never wraps onto a new line). Until the line
/// fits, the parts take their next shorter form, the least important first: every part its
/// second form before any its third. What still does not fit is cut.
pub fn fit(parts: &[Part], width: usize) -> String {
    let max = width.saturating_sub(1);
    let mut pick = vec![0usize; parts.len()];
    let line = |pick: &[usize]| -> String {
        parts
            .iter()
            .zip(pick)
            .map(|(p, &k)| p.forms[k.min(p.forms.len() - 1)].as_str())
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut order: Vec<usize> = (0..parts.len()).collect();
    // Least important first; of equal rank, the later one.
    order.sort_by_key(|&i| std::cmp::Reverse((parts[i].rank, i)));
    let deepest = parts.iter().map(|p| p.forms.len()).max().unwrap_or(1);
    for level in 1..deepest {
        for &i in &order {
            if line(&pick).chars().count() <= max {
                return line(&pick);
            }
            if level < parts[i].forms.len() {
                pick[i] = level;
            }
        }
    }
    line(&pick).chars().take(max).collect()
}

/// Columns of the terminal standard error is, if it is one.
pub fn width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given; fd 2 may be anything (it then fails).
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// The status line. Lines printed while it shows go through [`StatusLine::suspend`], which
/// takes it away and draws it again below them.
pub struct StatusLine {
    bar: indicatif::ProgressBar,
    /// Columns the bar itself keeps for its own drawing (a bar, a spinner) besides the text.
    reserved: usize,
}

impl StatusLine {
    /// A line of text alone (live's counters), when standard error is a terminal.
    pub fn text() -> Option<Self> {
        Self::with("{wide_msg}", None, 0)
    }

    /// A progress bar over `total` bytes, the text after it (read's progress); a spinner
    /// when the total is not known (standard input). When standard error is a terminal.
    pub fn progress(total: Option<u64>) -> Option<Self> {
        match total {
            // At least 10 columns of bar, and the space after it.
            Some(t) => Self::with("{wide_bar} {msg}", Some(t), 11),
            None => Self::with("{spinner} {msg}", None, 2),
        }
    }

    fn with(template: &str, total: Option<u64>, reserved: usize) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let style = indicatif::ProgressStyle::with_template(template).ok()?;
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(style);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
        Some(StatusLine { bar, reserved })
    }

    /// Show `parts`, fitted to the terminal's width now.
    pub fn set(&self, parts: &[Part]) {
        let width = width().unwrap_or(80).saturating_sub(self.reserved);
        self.bar.set_message(fit(parts, width));
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// What the bar counts up to, if it knows.
    pub fn total(&self) -> Option<u64> {
        self.bar.length()
    }

    /// Bytes a second, from indicatif's estimate.
    pub fn per_sec(&self) -> f64 {
        self.bar.per_sec()
    }

    /// Seconds left, from indicatif's estimate.
    pub fn eta(&self) -> std::time::Duration {
        self.bar.eta()
    }

    /// Run `f` (which prints) with the status line taken away, then draw it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Take the status line away for good.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Live's parts as live_cmd makes them.
    fn live_parts() -> Vec<Part> {
        vec![
            Part::new(0, &["01:02:05"]),
            Part::new(3, &["connections 2 open/5 seen", "conns 2/5", ""]),
            Part::new(2, &["streams 1 open/3 seen", "streams 1/3", ""]),
            Part::new(4, &["2.50 Mbit/s", "2.50 Mbit/s", ""]),
            Part::new(5, &["1234 packets", "1234 pkts", ""]),
            Part::new(1, &["kernel drops 7 (interface 0)", "drops 7+0"]),
        ]
    }

    #[test]
    fn everything_in_full_when_there_is_room() {
        assert_eq!(
            fit(&live_parts(), 200),
            "01:02:05  connections 2 open/5 seen  streams 1 open/3 seen  2.50 Mbit/s  1234 packets  kernel drops 7 (interface 0)"
        );
    }

    #[test]
    fn short_forms_least_important_first_then_parts_left_out() {
        // 80 columns: every part in its short form.
        assert_eq!(
            fit(&live_parts(), 80),
            "01:02:05  conns 2/5  streams 1/3  2.50 Mbit/s  1234 pkts  drops 7+0"
        );
        // A little more room: the more important keep their long forms.
        assert_eq!(
            fit(&live_parts(), 100),
            "01:02:05  conns 2/5  streams 1 open/3 seen  2.50 Mbit/s  1234 pkts  kernel drops 7 (interface 0)"
        );
        // Narrow: packets, then the rate, then connections go; the time and drops stay.
        assert_eq!(
            fit(&live_parts(), 50),
            "01:02:05  conns 2/5  streams 1/3  drops 7+0"
        );
        assert_eq!(fit(&live_parts(), 33), "01:02:05  streams 1/3  drops 7+0");
        assert_eq!(fit(&live_parts(), 20), "01:02:05  drops 7+0");
        // Narrower than the most important parts: cut.
        assert_eq!(fit(&live_parts(), 12), "01:02:05  d");
        assert_eq!(fit(&live_parts(), 1), "");
        assert_eq!(fit(&live_parts(), 0), "");
    }

    #[test]
    fn never_wider_than_the_width_less_one() {
        for width in 0..250 {
            let line = fit(&live_parts(), width);
            assert!(
                line.chars().count() < width.max(1),
                "{width}: {line:?} ({} columns)",
                line.chars().count()
            );
            if width > 20 {
                assert!(line.starts_with("01:02:05  "), "{width}: {line}");
                assert!(line.contains("drops 7"), "{width}: {line}");
            }
        }
    }
}
