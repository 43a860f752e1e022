//! When a tenant's scheduled backups are due: `spec.backup.schedule` read in
//! `spec.backup.timeZone`.
//!
//! Everything here is a pure function of its arguments (the clock is a parameter), so
//! the controller can ask "what now?" on every reconcile and after a restart, and get
//! the same answer from any replica.
//!
//! # Expressions
//!
//! The five fields CronJob accepts (minute, hour, day of month, month, day of week),
//! with `*`, `?`, lists, ranges, steps and the names `JAN`–`DEC` / `SUN`–`SAT` (in their
//! own fields), or one of the macros `@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight`, `@hourly`. As in CronJob (and Vixie cron), when both the day
//! of month and the day of week are restricted, a day matching *either* is a slot.
//! `croner`'s extensions that CronJob rejects (seconds, years, `L`, `W`, `#`, `+`) are
//! rejected too, so a schedule that works here works in a CronJob and back.
//!
//! # Time zones and daylight saving time
//!
//! Slots are wall-clock times in the IANA time zone `timeZone` (UTC when unset), read
//! from the system's time zone database (`/usr/share/zoneinfo`, which the operator
//! image carries). On the day the clocks go forward, a fixed-time slot that falls in
//! the skipped hour (`30 2 * * *` in `Europe/Berlin`) runs at the first instant after
//! the gap (03:00); on the day they go back, a fixed-time slot in the repeated hour runs
//! once, at its first occurrence. Interval schedules (`*/15 * * * *`) run on every real
//! instant that matches, so the repeated hour has its slots twice and the skipped hour
//! has none. This is the behaviour of Vixie cron and of `croner` (the "OCPS" rules).
//!
//! # Missed slots
//!
//! [`due`] looks only at the newest slot at or before `now`. If it is later than the
//! last slot a backup was created for (or than the Tenant's creation, before the first
//! one), one backup is due *for that slot*; older missed slots are counted but never
//! run. So an operator that was down for three days runs one backup when it comes back,
//! not three. There is no starting deadline: however late, the newest missed slot runs.
//! The same holds when `suspend` is cleared (the controller does not call [`due`]
//! while suspended) and when the schedule is edited: a slot of the new schedule that
//! lies between the last backup and now runs once.
//!
//! A new Tenant gets its first scheduled backup at its first slot after creation, not at
//! creation (a TenantBackup created by hand is the way to have one at once).
//!
//! # Spreading
//!
//! Ten thousand tenants sharing `0 3 * * *` must not start ten thousand `pg_dump`s at
//! 03:00:00. A schedule made with [`Schedule::spread_by`] starts each slot at a
//! deterministic delay after it, derived from the Tenant's UID: the delay is a fraction
//! of the *window* `min(1 hour, interval / 4)`, where the interval is the time from the
//! slot to the next one, and the fraction is the first 64 bits of SHA-256(UID) over
//! 2^64. So tenants of a daily schedule start uniformly over 03:00–04:00 (about three a
//! second for 10,000 tenants), those of `*/15 * * * *` over the first 3 min 45 s of each
//! slot, and a tenant keeps its delay across restarts, replicas and reconciles. The
//! delay never moves a slot past a quarter of its interval, so each backup keeps most
//! of its interval to run, and [`stale`] is unaffected (every slot moves alike).
//! The spread only shapes the steady state: after an outage every tenant is overdue at
//! once, and it is the backup controller's global concurrency limit that queues them.
//! The slot recorded for a backup is always the unspread slot.
//!
//! # Staleness
//!
//! [`stale`] says whether the newest successful backup is older than two schedule
//! intervals: with `s` the newest slot at or before the backup and `n2` the second slot
//! after `s`, the backup is stale once more than `n2 - s` has passed since it. One
//! failed run is not stale; two in a row are. Measuring slots rather than multiplying
//! one interval keeps a weekday schedule (`0 3 * * 1-5`) from turning stale over the
//! weekend.

use std::fmt;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The longest delay [`Schedule::spread_by`] adds to a slot.
pub const MAX_SPREAD: SignedDuration = SignedDuration::from_hours(1);

/// How many missed slots [`due`] counts before it stops counting (the count is only
/// reported, so a schedule of every minute missed for a month costs no more than this).
pub const MISSED_COUNT_LIMIT: u32 = 1000;

/// Why a schedule or a time zone cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The expression is not a cron expression CronJob accepts.
    #[error("invalid schedule {expression:?}: {reason}")]
    InvalidExpression {
        /// The expression as written.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The expression is valid but names no time that ever occurs (`0 0 30 2 *`).
    #[error("schedule {expression:?} never occurs")]
    NeverDue {
        /// The expression as written.
        expression: String,
    },
    /// The time zone is not in the time zone database.
    #[error("unknown time zone {name:?}: {reason}")]
    UnknownTimeZone {
        /// The name as written.
        name: String,
        /// What the time zone database said.
        reason: String,
    },
    /// No slot could be found from a given instant (only near the end of the
    /// representable time range).
    #[error("schedule {expression:?} has no slot {direction} {at}")]
    NoSlot {
        /// The expression as written.
        expression: String,
        /// `after` or `at or before`.
        direction: &'static str,
        /// The instant searched from.
        at: Timestamp,
    },
}

/// A parsed `spec.backup.schedule`, optionally spread for one tenant.
#[derive(Clone, Debug)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    /// The tenant's fraction of the spread window, in units of 2^-64; 0 when unspread.
    spread: u64,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.spread == other.spread
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Schedule::parse(expression)
    }
}

impl Schedule {
    /// Parses a five-field cron expression or macro, as CronJob accepts them.
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let invalid = |reason: String| ScheduleError::InvalidExpression {
            expression: expression.to_string(),
            reason,
        };
        let fields = five_fields(expression).map_err(invalid)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .build()
            .parse(&fields)
            .map_err(|e| invalid(e.to_string()))?;
        let schedule = Schedule {
            expression: expression.to_string(),
            cron,
            spread: 0,
        };
        // A pattern such as `0 0 30 2 *` parses but never occurs. Searching from
        // 2000-01-01 UTC covers every leap-year pattern within four years.
        let probe = Timestamp::from_second(946_684_800).unwrap_or(Timestamp::UNIX_EPOCH);
        if schedule.cron_next(&TimeZone::UTC, probe).is_none() {
            return Err(ScheduleError::NeverDue {
                expression: expression.to_string(),
            });
        }
        Ok(schedule)
    }

    /// The same schedule, with each slot started at the tenant's deterministic delay
    /// (see the module documentation). `uid` is the Tenant's `metadata.uid`.
    pub fn spread_by(mut self, uid: &str) -> Schedule {
        let digest = Sha256::digest(uid.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        self.spread = u64::from_be_bytes(first);
        self
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    fn cron_next(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&after.to_zoned(tz.clone()), false)
            .ok()
            .map(|z| z.timestamp())
    }

    fn cron_previous(&self, tz: &TimeZone, at: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&at.to_zoned(tz.clone()), true)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// Checks that `expression` is five CronJob fields or a macro, and returns the five
/// fields for `croner`.
fn five_fields(expression: &str) -> Result<String, String> {
    let expression = expression.trim();
    if let Some(name) = expression.strip_prefix('@') {
        return match name {
            "yearly" | "annually" => Ok("0 0 1 1 *".to_string()),
            "monthly" => Ok("0 0 1 * *".to_string()),
            "weekly" => Ok("0 0 * * 0".to_string()),
            "daily" | "midnight" => Ok("0 0 * * *".to_string()),
            "hourly" => Ok("0 * * * *".to_string()),
            _ => Err(format!(
                "unknown macro @{name}: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
            )),
        };
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    const FIELD: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    for (index, field) in fields.iter().enumerate() {
        if let Some(c) = field
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | ',' | '-' | '/')))
        {
            return Err(format!(
                "{} field {field:?}: {c:?} is not allowed",
                FIELD[index]
            ));
        }
        let names: &[&str] = match index {
            3 => &MONTHS,
            4 => &DAYS,
            _ => &[],
        };
        for word in field
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
        {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(word)) {
                return Err(format!(
                    "{} field {field:?}: {word:?} is not allowed",
                    FIELD[index]
                ));
            }
        }
    }
    Ok(fields.join(" "))
}

/// Looks up `spec.backup.timeZone`; `None` is UTC.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, ScheduleError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => jiff::tz::db()
            .get(name)
            .map_err(|e| ScheduleError::UnknownTimeZone {
                name: name.to_string(),
                reason: e.to_string(),
            }),
    }
}

/// The first slot strictly after `after`.
pub fn next_after(
    schedule: &Schedule,
    tz: &TimeZone,
    after: Timestamp,
) -> Result<Timestamp, ScheduleError> {
    schedule
        .cron_next(tz, after)
        .ok_or_else(|| ScheduleError::NoSlot {
            expression: schedule.expression.clone(),
            direction: "after",
            at: after,
        })
}

/// The newest slot at or before `at`, if there is one.
pub fn latest_at_or_before(schedule: &Schedule, tz: &TimeZone, at: Timestamp) -> Option<Timestamp> {
    schedule.cron_previous(tz, at)
}

/// How long after `slot` the schedule's tenant starts it: zero for an unspread
/// schedule, else the tenant's fraction of `min(MAX_SPREAD, interval / 4)`.
pub fn spread(
    schedule: &Schedule,
    tz: &TimeZone,
    slot: Timestamp,
) -> Result<SignedDuration, ScheduleError> {
    if schedule.spread == 0 {
        return Ok(SignedDuration::ZERO);
    }
    let interval = next_after(schedule, tz, slot)?.duration_since(slot);
    let window = (interval / 4).min(MAX_SPREAD);
    let window_ms = u128::try_from(window.as_millis()).unwrap_or(0);
    let delay_ms = (window_ms * u128::from(schedule.spread)) >> 64;
    Ok(SignedDuration::from_millis(
        i64::try_from(delay_ms).unwrap_or(0),
    ))
}

/// When the tenant starts `slot`: the slot plus its [`spread`].
pub fn start_of(
    schedule: &Schedule,
    tz: &TimeZone,
    slot: Timestamp,
) -> Result<Timestamp, ScheduleError> {
    let delay = spread(schedule, tz, slot)?;
    Ok(slot.checked_add(delay).unwrap_or(slot))
}

/// What the schedule asks for at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create one backup now, for `slot`.
    Run {
        /// The slot the backup stands for: record it as the new `last_scheduled`.
        slot: Timestamp,
        /// Older slots that were missed and will not run (at most
        /// [`MISSED_COUNT_LIMIT`]).
        missed: u32,
        /// When to look again: the start of the next slot.
        wake_at: Timestamp,
    },
    /// Nothing to do before `wake_at`.
    Wait {
        /// The start of the slot that is next due (the newest owed slot when it is
        /// still within its spread delay, else the next slot).
        wake_at: Timestamp,
    },
}

impl Decision {
    /// When the controller should look again.
    pub fn wake_at(&self) -> Timestamp {
        match *self {
            Decision::Run { wake_at, .. } | Decision::Wait { wake_at } => wake_at,
        }
    }
}

/// Whether a scheduled backup is due at `now`.
///
/// `last_scheduled` is the slot of the newest backup the schedule created (`None`
/// before the first), `created` the Tenant's creation time. A slot is owed when it is
/// later than `last_scheduled`, or than `created` when there is none; only the newest
/// owed slot runs, once, when its start (slot plus spread) has come.
pub fn due(
    schedule: &Schedule,
    tz: &TimeZone,
    last_scheduled: Option<Timestamp>,
    created: Timestamp,
    now: Timestamp,
) -> Result<Decision, ScheduleError> {
    let baseline = last_scheduled.unwrap_or(created);
    let next_start = start_of(schedule, tz, next_after(schedule, tz, now)?)?;
    let Some(slot) = latest_at_or_before(schedule, tz, now).filter(|slot| *slot > baseline) else {
        return Ok(Decision::Wait {
            wake_at: next_start,
        });
    };
    let start = start_of(schedule, tz, slot)?;
    if start > now {
        return Ok(Decision::Wait {
            wake_at: start.min(next_start),
        });
    }
    let mut missed = 0;
    let mut cursor = next_after(schedule, tz, baseline)?;
    while cursor < slot && missed < MISSED_COUNT_LIMIT {
        missed += 1;
        cursor = next_after(schedule, tz, cursor)?;
    }
    Ok(Decision::Run {
        slot,
        missed,
        wake_at: next_start,
    })
}

/// Whether the newest successful backup, completed at `last_success`, is older than two
/// schedule intervals at `now` (see the module documentation). For a Tenant that never
/// had a successful backup, pass its creation time.
pub fn stale(
    last_success: Timestamp,
    schedule: &Schedule,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<bool, ScheduleError> {
    let from = latest_at_or_before(schedule, tz, last_success).unwrap_or(last_success);
    let second = next_after(schedule, tz, next_after(schedule, tz, from)?)?;
    Ok(now.duration_since(last_success) > second.duration_since(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn sched(expression: &str) -> Schedule {
        Schedule::parse(expression).expect("test schedule")
    }

    fn tz(name: &str) -> TimeZone {
        time_zone(Some(name)).expect("test time zone")
    }

    #[test]
    fn accepts_what_cronjob_accepts() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * MON-FRI",
            "30 2 * JAN-MAR 0",
            "0 3 ? * *",
            "5-55/10 1-23/2 * * sun",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn rejects_what_cronjob_rejects() {
        for bad in [
            "",
            "0 3 * *",
            "0 0 3 * * *",
            "0 0 3 * * * 2026",
            "0 3 L * *",
            "0 3 15W * *",
            "0 3 * * 5#2",
            "0 3 * * +MON",
            "0 3 * MON *",
            "0 JAN * * *",
            "60 * * * *",
            "0 24 * * *",
            "@every 1h",
            "@reboot",
            "TZ=UTC 0 3 * * *",
        ] {
            assert!(
                matches!(
                    Schedule::parse(bad),
                    Err(ScheduleError::InvalidExpression { .. })
                ),
                "{bad:?} should be rejected, got {:?}",
                Schedule::parse(bad)
            );
        }
        assert_eq!(
            Schedule::parse("0 0 30 2 *"),
            Err(ScheduleError::NeverDue {
                expression: "0 0 30 2 *".to_string()
            })
        );
        // February 29th does occur.
        assert!(Schedule::parse("0 0 29 2 *").is_ok());
    }

    #[test]
    fn time_zones() {
        assert_eq!(time_zone(None), Ok(TimeZone::UTC));
        assert!(time_zone(Some("Europe/Berlin")).is_ok());
        assert!(matches!(
            time_zone(Some("Mars/Olympus_Mons")),
            Err(ScheduleError::UnknownTimeZone { .. })
        ));
    }

    /// Each row: expression, zone, the instant searched from, the next slots after it.
    #[test]
    fn next_slots() {
        let rows: &[(&str, &str, &str, &[&str])] = &[
            // Strictly after: a slot at the start instant is not returned.
            (
                "0 3 * * *",
                "UTC",
                "2026-05-01T03:00:00Z",
                &["2026-05-02T03:00:00Z", "2026-05-03T03:00:00Z"],
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-05-01T23:37:12Z",
                &[
                    "2026-05-01T23:45:00Z",
                    "2026-05-02T00:00:00Z",
                    "2026-05-02T00:15:00Z",
                ],
            ),
            // Winter and summer offsets of Europe/Berlin.
            (
                "0 3 * * *",
                "Europe/Berlin",
                "2026-01-10T00:00:00Z",
                &["2026-01-10T02:00:00Z"],
            ),
            (
                "0 3 * * *",
                "Europe/Berlin",
                "2026-07-10T00:00:00Z",
                &["2026-07-10T01:00:00Z"],
            ),
            // Spring forward (2026-03-29, 02:00 CET -> 03:00 CEST): 02:30 does not
            // exist and runs at 03:00 CEST, then back at 02:30 CEST the day after.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-28T12:00:00Z",
                &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            // ... and a daily 03:00 slot is 23 hours after the previous one.
            (
                "0 3 * * *",
                "Europe/Berlin",
                "2026-03-28T00:00:00Z",
                &["2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z"],
            ),
            // Interval schedules have no slots in the skipped hour.
            (
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-03-29T00:15:00Z",
                &["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"],
            ),
            // Fall back (2026-10-25, 03:00 CEST -> 02:00 CET): a fixed-time 02:30 runs
            // once, at 02:30 CEST, not again at 02:30 CET.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ),
            // Interval schedules run on both passes of the repeated hour.
            (
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-10-24T23:45:00Z",
                &[
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T01:30:00Z",
                    "2026-10-25T02:00:00Z",
                ],
            ),
            // Day of month and day of week both restricted: either matches, as in
            // CronJob (Sunday 31 May, Monday 1 June, Sunday 7 June).
            (
                "0 0 1 * 0",
                "UTC",
                "2026-05-28T00:00:00Z",
                &[
                    "2026-05-31T00:00:00Z",
                    "2026-06-01T00:00:00Z",
                    "2026-06-07T00:00:00Z",
                ],
            ),
            // Macros.
            (
                "@weekly",
                "UTC",
                "2026-05-28T00:00:00Z",
                &["2026-05-31T00:00:00Z", "2026-06-07T00:00:00Z"],
            ),
            (
                "@monthly",
                "UTC",
                "2026-05-28T00:00:00Z",
                &["2026-06-01T00:00:00Z"],
            ),
            (
                "@midnight",
                "America/New_York",
                "2026-05-28T12:00:00Z",
                &["2026-05-29T04:00:00Z"],
            ),
            (
                "0 0 29 2 *",
                "UTC",
                "2026-01-01T00:00:00Z",
                &["2028-02-29T00:00:00Z"],
            ),
        ];
        for (expression, zone, from, want) in rows {
            let schedule = sched(expression);
            let zone = tz(zone);
            let mut at = ts(from);
            for want in *want {
                at = next_after(&schedule, &zone, at).expect("a next slot");
                assert_eq!(at, ts(want), "{expression} in {zone:?} from {from}");
            }
        }
    }

    #[test]
    fn first_run_after_creation_is_the_first_slot_after_it() {
        let s = sched("0 3 * * *");
        let created = ts("2026-05-01T10:00:00Z");
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                None,
                created,
                ts("2026-05-01T10:00:01Z")
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-02T03:00:00Z")
            })
        );
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                None,
                created,
                ts("2026-05-02T02:59:59Z")
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-02T03:00:00Z")
            })
        );
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                None,
                created,
                ts("2026-05-02T03:00:00Z")
            ),
            Ok(Decision::Run {
                slot: ts("2026-05-02T03:00:00Z"),
                missed: 0,
                wake_at: ts("2026-05-03T03:00:00Z"),
            })
        );
        // A Tenant created exactly at a slot does not owe that slot.
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                None,
                ts("2026-05-02T03:00:00Z"),
                ts("2026-05-02T03:00:30Z")
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-03T03:00:00Z")
            })
        );
    }

    #[test]
    fn a_slot_that_ran_is_not_due_again() {
        let s = sched("0 3 * * *");
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                Some(ts("2026-05-02T03:00:00Z")),
                ts("2026-05-01T10:00:00Z"),
                ts("2026-05-02T03:00:05Z"),
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-03T03:00:00Z")
            })
        );
        // A last slot in the future (clock skew between replicas) owes nothing.
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                Some(ts("2026-05-03T03:00:00Z")),
                ts("2026-05-01T10:00:00Z"),
                ts("2026-05-02T04:00:00Z"),
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-03T03:00:00Z")
            })
        );
    }

    /// Drives `due` like a controller would: look at every `step` from `from` to
    /// `until`, record the slot of each run, and return the runs.
    fn drive(
        schedule: &Schedule,
        zone: &TimeZone,
        mut last: Option<Timestamp>,
        created: Timestamp,
        from: &str,
        until: &str,
        step: SignedDuration,
    ) -> Vec<(Timestamp, Timestamp, u32)> {
        let mut runs = Vec::new();
        let mut now = ts(from);
        while now <= ts(until) {
            match due(schedule, zone, last, created, now).expect("a decision") {
                Decision::Run { slot, missed, .. } => {
                    runs.push((now, slot, missed));
                    last = Some(slot);
                }
                Decision::Wait { wake_at } => assert!(wake_at > now, "wakes up in the future"),
            }
            now = now.checked_add(step).expect("in range");
        }
        runs
    }

    #[test]
    fn three_days_down_runs_once_for_the_newest_slot() {
        let s = sched("0 3 * * *");
        let created = ts("2026-04-01T00:00:00Z");
        // The last backup was for 2 May; the operator comes back on 5 May at 17:00 and
        // reconciles every minute until the next slot is near.
        let runs = drive(
            &s,
            &TimeZone::UTC,
            Some(ts("2026-05-02T03:00:00Z")),
            created,
            "2026-05-05T17:00:00Z",
            "2026-05-06T02:59:00Z",
            SignedDuration::from_mins(1),
        );
        assert_eq!(
            runs,
            vec![(ts("2026-05-05T17:00:00Z"), ts("2026-05-05T03:00:00Z"), 2)]
        );
        // And the next day runs as usual.
        let runs = drive(
            &s,
            &TimeZone::UTC,
            Some(ts("2026-05-05T03:00:00Z")),
            created,
            "2026-05-06T02:59:00Z",
            "2026-05-07T02:59:00Z",
            SignedDuration::from_mins(1),
        );
        assert_eq!(
            runs,
            vec![(ts("2026-05-06T03:00:00Z"), ts("2026-05-06T03:00:00Z"), 0)]
        );
    }

    #[test]
    fn every_fifteen_minutes() {
        let s = sched("*/15 * * * *");
        let created = ts("2026-05-01T09:00:00Z");
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                Some(ts("2026-05-01T10:00:00Z")),
                created,
                ts("2026-05-01T10:14:59Z")
            ),
            Ok(Decision::Wait {
                wake_at: ts("2026-05-01T10:15:00Z")
            })
        );
        // Running steadily for an hour: one run per slot, on time.
        let runs = drive(
            &s,
            &TimeZone::UTC,
            Some(ts("2026-05-01T10:00:00Z")),
            created,
            "2026-05-01T10:00:00Z",
            "2026-05-01T11:00:00Z",
            SignedDuration::from_secs(20),
        );
        let slots: Vec<Timestamp> = runs.iter().map(|r| r.1).collect();
        assert_eq!(
            slots,
            ["10:15", "10:30", "10:45", "11:00"]
                .iter()
                .map(|t| ts(&format!("2026-05-01T{t}:00Z")))
                .collect::<Vec<_>>()
        );
        assert!(
            runs.iter()
                .all(|(now, slot, missed)| now == slot && *missed == 0)
        );
        // Down from 10:16 to 12:07: one run, for 12:00, having missed 10:30 to 11:45.
        assert_eq!(
            due(
                &s,
                &TimeZone::UTC,
                Some(ts("2026-05-01T10:15:00Z")),
                created,
                ts("2026-05-01T12:07:00Z")
            ),
            Ok(Decision::Run {
                slot: ts("2026-05-01T12:00:00Z"),
                missed: 6,
                wake_at: ts("2026-05-01T12:15:00Z"),
            })
        );
    }

    #[test]
    fn daylight_saving_days_run_each_fixed_slot_once() {
        let s = sched("30 2 * * *");
        let berlin = tz("Europe/Berlin");
        let created = ts("2026-01-01T00:00:00Z");
        // Spring forward: the 02:30 of 29 March runs at 03:00 CEST (01:00Z), once.
        let runs = drive(
            &s,
            &berlin,
            Some(ts("2026-03-28T01:30:00Z")),
            created,
            "2026-03-28T12:00:00Z",
            "2026-03-29T12:00:00Z",
            SignedDuration::from_mins(5),
        );
        assert_eq!(
            runs,
            vec![(ts("2026-03-29T01:00:00Z"), ts("2026-03-29T01:00:00Z"), 0)]
        );
        // Fall back: 02:30 CEST (00:30Z) runs; 02:30 CET (01:30Z) does not run again.
        let runs = drive(
            &s,
            &berlin,
            Some(ts("2026-10-24T00:30:00Z")),
            created,
            "2026-10-24T12:00:00Z",
            "2026-10-25T12:00:00Z",
            SignedDuration::from_mins(5),
        );
        assert_eq!(
            runs,
            vec![(ts("2026-10-25T00:30:00Z"), ts("2026-10-25T00:30:00Z"), 0)]
        );
    }

    #[test]
    fn interval_schedules_run_twice_in_the_repeated_hour() {
        let s = sched("0 * * * *");
        let berlin = tz("Europe/Berlin");
        let runs = drive(
            &s,
            &berlin,
            Some(ts("2026-10-24T23:00:00Z")),
            ts("2026-01-01T00:00:00Z"),
            "2026-10-24T23:30:00Z",
            "2026-10-25T02:30:00Z",
            SignedDuration::from_mins(5),
        );
        // 02:00 CEST, 02:00 CET, 03:00 CET.
        let slots: Vec<Timestamp> = runs.iter().map(|r| r.1).collect();
        assert_eq!(
            slots,
            vec![
                ts("2026-10-25T00:00:00Z"),
                ts("2026-10-25T01:00:00Z"),
                ts("2026-10-25T02:00:00Z"),
            ]
        );
    }

    fn uid(i: u32) -> String {
        format!("{i:08x}-7d3c-4e8a-9b1f-{:012x}", u64::from(i) * 7919)
    }

    #[test]
    fn ten_thousand_tenants_at_three_are_spread_over_an_hour() {
        let base = sched("0 3 * * *");
        let slot = ts("2026-05-02T03:00:00Z");
        let mut per_five_minutes = [0u32; 12];
        for i in 0..10_000 {
            let s = base.clone().spread_by(&uid(i));
            let delay = spread(&s, &TimeZone::UTC, slot).expect("a delay");
            assert!(
                delay >= SignedDuration::ZERO && delay < MAX_SPREAD,
                "{delay:?}"
            );
            per_five_minutes[(delay.as_secs() / 300) as usize] += 1;
        }
        // Uniform would be 833 in each five minutes; no bucket is crowded or empty.
        for (bucket, count) in per_five_minutes.iter().enumerate() {
            assert!(
                (700..=970).contains(count),
                "minutes {}-{}: {count} tenants",
                bucket * 5,
                bucket * 5 + 5
            );
        }
    }

    #[test]
    fn spread_is_per_tenant_deterministic_and_bounded_by_the_interval() {
        let base = sched("*/15 * * * *");
        let slot = ts("2026-05-02T03:15:00Z");
        let a = base
            .clone()
            .spread_by("7c1e0f4a-0000-4000-8000-000000000001");
        let b = base
            .clone()
            .spread_by("7c1e0f4a-0000-4000-8000-000000000002");
        let da = spread(&a, &TimeZone::UTC, slot).expect("a delay");
        assert_eq!(
            spread(&a.clone(), &TimeZone::UTC, slot),
            Ok(da),
            "same tenant, same delay"
        );
        assert_ne!(spread(&b, &TimeZone::UTC, slot), Ok(da));
        assert_eq!(
            spread(&base, &TimeZone::UTC, slot),
            Ok(SignedDuration::ZERO)
        );
        // A quarter of 15 minutes.
        for i in 0..1000 {
            let s = base.clone().spread_by(&uid(i));
            let d = spread(&s, &TimeZone::UTC, slot).expect("a delay");
            assert!(d < SignedDuration::from_secs(225), "{d:?}");
        }
    }

    #[test]
    fn a_spread_schedule_runs_at_its_delay_and_records_the_slot() {
        let s = sched("0 3 * * *").spread_by("7c1e0f4a-0000-4000-8000-000000000001");
        let slot = ts("2026-05-02T03:00:00Z");
        let delay = spread(&s, &TimeZone::UTC, slot).expect("a delay");
        assert!(
            delay > SignedDuration::from_secs(60),
            "test needs a real delay"
        );
        let start = slot.checked_add(delay).expect("in range");
        let created = ts("2026-05-01T10:00:00Z");
        assert_eq!(
            due(&s, &TimeZone::UTC, None, created, slot),
            Ok(Decision::Wait { wake_at: start })
        );
        match due(&s, &TimeZone::UTC, None, created, start) {
            Ok(Decision::Run {
                slot: ran, wake_at, ..
            }) => {
                assert_eq!(ran, slot);
                assert!(wake_at > ts("2026-05-03T03:00:00Z"));
                assert!(wake_at < ts("2026-05-03T04:00:00Z"));
            }
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn stale_after_two_intervals() {
        let utc = TimeZone::UTC;
        let daily = sched("0 3 * * *");
        let last = ts("2026-05-04T03:10:00Z");
        for (now, want) in [
            ("2026-05-05T03:10:00Z", false),
            ("2026-05-06T03:10:00Z", false),
            ("2026-05-06T03:10:01Z", true),
        ] {
            assert_eq!(
                stale(last, &daily, &utc, ts(now)),
                Ok(want),
                "daily at {now}"
            );
        }
        // Weekdays: Friday's backup is not stale over the weekend; it is once Monday's
        // and Tuesday's slots have both passed without a new one.
        let weekdays = sched("0 3 * * 1-5");
        let friday = ts("2026-05-08T03:10:00Z");
        for (now, want) in [
            ("2026-05-10T23:00:00Z", false),
            ("2026-05-11T23:00:00Z", false),
            ("2026-05-12T03:10:01Z", true),
        ] {
            assert_eq!(
                stale(friday, &weekdays, &utc, ts(now)),
                Ok(want),
                "weekdays at {now}"
            );
        }
        let quarter = sched("*/15 * * * *");
        let last = ts("2026-05-04T10:05:00Z");
        assert_eq!(
            stale(last, &quarter, &utc, ts("2026-05-04T10:35:00Z")),
            Ok(false)
        );
        assert_eq!(
            stale(last, &quarter, &utc, ts("2026-05-04T10:35:01Z")),
            Ok(true)
        );
        // Across spring forward, two daily intervals in Berlin are 47 hours.
        let berlin = tz("Europe/Berlin");
        let last = ts("2026-03-28T02:00:00Z");
        assert_eq!(
            stale(last, &daily, &berlin, ts("2026-03-30T01:00:00Z")),
            Ok(false)
        );
        assert_eq!(
            stale(last, &daily, &berlin, ts("2026-03-30T01:00:01Z")),
            Ok(true)
        );
    }
}
