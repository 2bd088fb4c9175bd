//! Cron schedules in an IANA time zone, on croner 4 (its 4.0 release fixed
//! iteration across a DST overlap) and chrono-tz.
//!
//! DST follows Vixie cron, as croner documents: a fixed-time run that falls
//! in the spring-forward gap runs at the first valid time after it, the same
//! day; one in the fall-back overlap runs once, at its first occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::ScheduleError;

/// An IANA time zone name that chrono-tz knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZoneName(Tz);

impl TimeZoneName {
    pub fn parse(name: &str) -> Result<Self, ScheduleError> {
        Tz::from_str(name.trim())
            .map(Self)
            .map_err(|_| ScheduleError::TimeZone(name.to_owned()))
    }

    pub fn tz(self) -> Tz {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

/// A five-field cron expression (or `@daily`, `@hourly`, `@weekly`,
/// `@monthly`, `@yearly`/`@annually`, `@midnight`) in a time zone.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    zone: TimeZoneName,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.expr, self.zone.name())
    }
}

impl Schedule {
    pub fn parse(expr: &str, zone: &str) -> Result<Self, ScheduleError> {
        let zone = TimeZoneName::parse(zone)?;
        let trimmed = expr.trim();
        let bad = |reason: String| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason,
        };
        let normalised = match trimmed.to_ascii_lowercase().as_str() {
            "@midnight" => "@daily".to_owned(),
            // A backup schedule needs a time: @reboot has none.
            "@reboot" => return Err(bad("@reboot is not a schedule".into())),
            _ => trimmed.to_owned(),
        };
        if !normalised.starts_with('@') && normalised.split_whitespace().count() != 5 {
            return Err(bad(
                "five fields are needed: minute hour day-of-month month day-of-week".into(),
            ));
        }
        // Seconds and years disallowed: berth's schedules are classic cron.
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(&normalised).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            expr: trimmed.to_owned(),
            cron,
            zone,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn zone(&self) -> TimeZoneName {
        self.zone
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let local = after.with_timezone(&self.zone.tz());
        self.cron
            .find_next_occurrence(&local, false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ScheduleError::NoOccurrence(self.expr.clone()))
    }

    /// The next `n` runs after `after`, in the schedule's zone (what the UI shows).
    pub fn next_runs(
        &self,
        after: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<DateTime<Tz>>, ScheduleError> {
        let mut out = Vec::with_capacity(n);
        // Each search starts from the exact instant the previous one returned,
        // as croner asks, so an overlap hour is not returned twice.
        let mut at = after;
        for _ in 0..n {
            at = self.next_after(at)?;
            out.push(at.with_timezone(&self.zone.tz()));
        }
        Ok(out)
    }

    /// The latest run at or before `now` that is after `last_fired`: a run
    /// missed while berth was down, to run once at start.
    pub fn missed_run(
        &self,
        last_fired: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.zone.tz());
        let prev = self
            .cron
            .find_previous_occurrence(&local, true)
            .ok()?
            .with_timezone(&Utc);
        (prev > last_fired).then_some(prev)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn runs(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
        Schedule::parse(expr, zone)
            .unwrap()
            .next_runs(utc(after), n)
            .unwrap()
            .iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn day_31_skips_the_months_that_have_no_31st() {
        assert_eq!(
            runs("0 3 31 * *", "UTC", "2027-01-15T00:00:00Z", 3),
            [
                "2027-01-31T03:00:00+00:00",
                "2027-03-31T03:00:00+00:00",
                "2027-05-31T03:00:00+00:00"
            ]
        );
    }

    #[test]
    fn the_last_day_of_the_month_follows_each_month_end() {
        assert_eq!(
            runs("30 23 L * *", "Europe/Berlin", "2027-01-01T00:00:00Z", 3),
            [
                "2027-01-31T23:30:00+01:00",
                "2027-02-28T23:30:00+01:00",
                "2027-03-31T23:30:00+02:00"
            ]
        );
    }

    #[test]
    fn the_29th_of_february_runs_only_in_leap_years() {
        assert_eq!(
            runs("0 12 29 2 *", "UTC", "2026-12-07T00:00:00Z", 2),
            ["2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"]
        );
    }

    #[test]
    fn berlin_spring_forward_runs_a_2_30_job_once_at_3_00_and_keeps_local_time_after() {
        // 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2027-03-26T12:00:00Z", 3),
            [
                "2027-03-27T02:30:00+01:00",
                "2027-03-28T03:00:00+02:00",
                "2027-03-29T02:30:00+02:00"
            ]
        );
    }

    #[test]
    fn berlin_fall_back_runs_a_2_30_job_once_not_twice() {
        // 2027-10-31: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2027-10-30T12:00:00Z", 2),
            ["2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]
        );
    }

    #[test]
    fn new_york_daily_stays_at_9_local_across_both_dst_changes() {
        // A daily 09:00 job in New York moves from 14:00 to 13:00 UTC on
        // 2027-03-14 and back on 2027-11-07 (dokploy#2935 ran it in UTC).
        let s = Schedule::parse("0 9 * * *", "America/New_York").unwrap();
        let got: Vec<_> = s.next_runs(utc("2027-03-13T00:00:00Z"), 2).unwrap();
        assert_eq!(got[0].with_timezone(&Utc), utc("2027-03-13T14:00:00Z"));
        assert_eq!(got[1].with_timezone(&Utc), utc("2027-03-14T13:00:00Z"));
        let got: Vec<_> = s.next_runs(utc("2027-11-06T00:00:00Z"), 2).unwrap();
        assert_eq!(got[0].with_timezone(&Utc), utc("2027-11-06T13:00:00Z"));
        assert_eq!(got[1].with_timezone(&Utc), utc("2027-11-07T14:00:00Z"));
    }

    #[test]
    fn new_york_hourly_job_skips_the_missing_hour_and_runs_the_repeated_hour_twice() {
        // Interval jobs run for each wall time that exists, in real time.
        let fwd = runs("0 * * * *", "America/New_York", "2027-03-14T05:30:00Z", 3);
        assert_eq!(
            fwd,
            [
                "2027-03-14T01:00:00-05:00",
                "2027-03-14T03:00:00-04:00",
                "2027-03-14T04:00:00-04:00"
            ]
        );
        let back = runs("0 * * * *", "America/New_York", "2027-11-07T04:30:00Z", 3);
        assert_eq!(
            back,
            [
                "2027-11-07T01:00:00-04:00",
                "2027-11-07T01:00:00-05:00",
                "2027-11-07T02:00:00-05:00"
            ]
        );
    }

    #[test]
    fn shortcuts_mean_what_cron_means() {
        for (expr, zone, next) in [
            ("@daily", "Europe/Berlin", "2027-06-02T00:00:00+02:00"),
            ("@midnight", "UTC", "2027-06-02T00:00:00+00:00"),
            ("@weekly", "UTC", "2027-06-06T00:00:00+00:00"),
            ("@monthly", "UTC", "2027-07-01T00:00:00+00:00"),
            ("@yearly", "UTC", "2028-01-01T00:00:00+00:00"),
            ("@hourly", "UTC", "2027-06-01T11:00:00+00:00"),
        ] {
            assert_eq!(
                runs(expr, zone, "2027-06-01T10:00:00Z", 1),
                [next],
                "{expr}"
            );
        }
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        for bad in [
            "",
            "* * * *",
            "0 0 * * * *",
            "0 0 * * * * 2027",
            "61 * * * *",
            "@reboot",
            "@fortnightly",
        ] {
            assert!(
                matches!(Schedule::parse(bad, "UTC"), Err(ScheduleError::Cron { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            Schedule::parse("@daily", "Mars/Olympus").unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn a_run_missed_while_down_is_found_once() {
        let s = Schedule::parse("0 3 * * *", "UTC").unwrap();
        let last = Utc.with_ymd_and_hms(2027, 6, 1, 3, 0, 0).unwrap();
        // Down from the 1st to the 3rd at noon: one catch-up run, the latest.
        let now = Utc.with_ymd_and_hms(2027, 6, 3, 12, 0, 0).unwrap();
        assert_eq!(
            s.missed_run(last, now),
            Some(Utc.with_ymd_and_hms(2027, 6, 3, 3, 0, 0).unwrap())
        );
        let now = Utc.with_ymd_and_hms(2027, 6, 1, 12, 0, 0).unwrap();
        assert_eq!(s.missed_run(last, now), None);
    }
}
