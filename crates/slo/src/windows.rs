//! Multi-window, multi-burn-rate alert windows, as Sloth sets them.
//!
//! Each of the four alerts (page quick and slow, ticket quick and slow)
//! fires when both a long and a short window burn faster than a factor.
//! The factor is how fast the error budget must burn for the long window
//! to consume a given share of the whole period's budget:
//!
//! ```text
//! factor = budget share (%) × period (h) / 100 / long window (h)
//! ```
//!
//! Sloth's catalog for 30 and 28 days holds the SRE workbook's shares and
//! windows: 2 % over 1h (short 5m), 5 % over 6h (30m), 10 % over 1d (2h)
//! and 10 % over 3d (6h); for 30 days that is 14.4, 6, 3 and 1. For
//! seven days Sloth ships a catalog of its own (`examples/windows/7d.yaml`,
//! which its 7-day integration test generates with): the same windows
//! with shares of 8, 12.5, 20 and 42 %, factors 13.44, 3.5, 1.4 and 0.98.
//! osprey uses that catalog for a 7-day period, and for every other
//! period the 30-day shares with Sloth's formula, so 7, 28 and 30 days
//! are exactly Sloth's output and any other period is scaled the way
//! Sloth scales between 28 and 30 days (90d: 43.2, 18, 9, 3). A calendar
//! month is scaled as 30 days and a quarter as 90.

use config::slos::Period;

/// Page or ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    /// Sloth's `sloth_severity` label value.
    pub fn text(&self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One window pair of an alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertWindow {
    pub severity: Severity,
    /// The share of the period's budget the long window may consume, in
    /// percent.
    pub budget_percent: f64,
    pub short_ms: i64,
    pub long_ms: i64,
    /// The burn rate both windows must exceed.
    pub factor: f64,
}

/// The four window pairs of an SLO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertWindows {
    pub page_quick: AlertWindow,
    pub page_slow: AlertWindow,
    pub ticket_quick: AlertWindow,
    pub ticket_slow: AlertWindow,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

impl AlertWindows {
    /// The windows for `period`.
    pub fn for_period(period: Period) -> AlertWindows {
        let period_ms = period.nominal_ms();
        // Budget shares (%) of page quick, page slow, ticket quick and
        // ticket slow: Sloth's 7-day catalog for seven days (with the
        // 30-day shares a 7-day SLO would open a ticket at a burn rate of
        // 0.23, one its budget survives), else the SRE workbook's.
        let shares = if period == (Period::Rolling { ms: 7 * DAY_MS }) {
            [8.0, 12.5, 20.0, 42.0]
        } else {
            [2.0, 5.0, 10.0, 10.0]
        };
        let pair = |severity, budget_percent, short_ms, long_ms| AlertWindow {
            severity,
            budget_percent,
            short_ms,
            long_ms,
            factor: burn_rate_factor(period_ms, budget_percent, long_ms),
        };
        AlertWindows {
            page_quick: pair(Severity::Page, shares[0], 5 * MINUTE_MS, HOUR_MS),
            page_slow: pair(Severity::Page, shares[1], 30 * MINUTE_MS, 6 * HOUR_MS),
            ticket_quick: pair(Severity::Ticket, shares[2], 2 * HOUR_MS, DAY_MS),
            ticket_slow: pair(Severity::Ticket, shares[3], 6 * HOUR_MS, 3 * DAY_MS),
        }
    }

    /// The four pairs, page quick first.
    pub fn all(&self) -> [AlertWindow; 4] {
        [
            self.page_quick,
            self.page_slow,
            self.ticket_quick,
            self.ticket_slow,
        ]
    }

    /// Every distinct window, shortest first (Sloth's
    /// `TimeDurationWindows`): the SLI recording rules' windows.
    pub fn distinct_windows(&self) -> Vec<i64> {
        let mut windows: Vec<i64> = self
            .all()
            .iter()
            .flat_map(|pair| [pair.short_ms, pair.long_ms])
            .collect();
        windows.sort_unstable();
        windows.dedup();
        windows
    }
}

/// Sloth's `getBurnRateFactor`, with Go's `Duration.Hours()` arithmetic
/// (whole hours plus the rest in nanoseconds), so that the float is
/// bit-for-bit Sloth's.
fn burn_rate_factor(period_ms: i64, budget_percent: f64, long_ms: i64) -> f64 {
    let hours_required = budget_percent * go_hours(period_ms) / 100.0;
    hours_required / go_hours(long_ms)
}

fn go_hours(ms: i64) -> f64 {
    let hours = ms / HOUR_MS;
    let nanoseconds = (ms % HOUR_MS) * 1_000_000;
    hours as f64 + nanoseconds as f64 / (60.0 * 60.0 * 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_and_twenty_eight_days_are_sloths_catalog() {
        let w = AlertWindows::for_period(Period::Rolling { ms: 30 * DAY_MS });
        let factors: Vec<f64> = w.all().iter().map(|p| p.factor).collect();
        assert_eq!(factors, vec![14.4, 6.0, 3.0, 1.0]);
        assert_eq!(
            w.distinct_windows(),
            vec![
                5 * MINUTE_MS,
                30 * MINUTE_MS,
                HOUR_MS,
                2 * HOUR_MS,
                6 * HOUR_MS,
                DAY_MS,
                3 * DAY_MS
            ]
        );
        let w = AlertWindows::for_period(Period::Rolling { ms: 28 * DAY_MS });
        let factors: Vec<String> = w
            .all()
            .iter()
            .map(|p| crate::gofmt::go_g(p.factor))
            .collect();
        assert_eq!(
            factors,
            vec![
                "13.44",
                "5.6000000000000005",
                "2.8000000000000003",
                "0.9333333333333333"
            ]
        );
    }

    #[test]
    fn seven_days_are_sloths_catalog_and_other_periods_scale_by_length() {
        let factors = |period| {
            AlertWindows::for_period(period)
                .all()
                .iter()
                .map(|p| (p.factor * 1000.0).round() / 1000.0)
                .collect::<Vec<f64>>()
        };
        assert_eq!(
            factors(Period::Rolling { ms: 7 * DAY_MS }),
            vec![13.44, 3.5, 1.4, 0.98]
        );
        assert_eq!(
            factors(Period::Rolling { ms: 14 * DAY_MS }),
            vec![6.72, 2.8, 1.4, 0.467]
        );
        assert_eq!(
            factors(Period::Rolling { ms: 90 * DAY_MS }),
            vec![43.2, 18.0, 9.0, 3.0]
        );
        assert_eq!(factors(Period::Month), vec![14.4, 6.0, 3.0, 1.0]);
        assert_eq!(factors(Period::Quarter), vec![43.2, 18.0, 9.0, 3.0]);
    }
}
