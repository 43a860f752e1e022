//! Which backups `spec.backup.retention` keeps, with the semantics of restic's `forget`.
//!
//! # Completed backups
//!
//! The rules are those of `restic forget --keep-last/--keep-daily/--keep-weekly/
//! --keep-monthly`, as restic's `ApplyPolicy` implements them:
//!
//! - backups are taken newest first (by completion time; for equal times, which the
//!   API's one-second timestamps make common in a burst, the greater name first: the
//!   later slot of scheduled names, the higher counter of numbered ones);
//! - `keepLast: N` keeps the N newest backups;
//! - `keepDaily: N` keeps, for each of the last N *days that have backups*, the newest
//!   backup of that day; `keepWeekly` does the same for ISO weeks (Monday to Sunday,
//!   numbered as ISO 8601 does, so 3 January 2021 is in week 53 of 2020) and
//!   `keepMonthly` for calendar months. Days without backups are not counted: with a
//!   gap, `keepDaily: 7` reaches further back than seven days;
//! - each rule counts on its own, and a backup kept by any rule is kept (the newest
//!   backup is usually kept by all of them at once, so they do not add up);
//! - when a rule still has counts left at the oldest backup, the oldest backup is kept
//!   too, even if its period already has a kept backup (restic's "oldest" reason): the
//!   longest history the counts allow is kept;
//! - days, weeks and months are those of the schedule's time zone
//!   (`spec.backup.timeZone`, UTC by default), so a backup completed at 00:30 on
//!   1 June in Berlin belongs to June even though it is still May in UTC;
//! - a policy whose counts are all zero keeps everything: like restic, which refuses to
//!   act on an empty policy, Landlord never deletes every backup because of a typo.
//!
//! # Failed backups
//!
//! Only Completed backups count for the rules above: a Failed one never takes the place
//! of a good one. The [`KEEP_FAILED`] newest Failed backups are kept, so their status
//! still says why they failed; older Failed ones are removed. Pending and Running
//! backups are not retention's business and are never passed in.
//!
//! # Object lock
//!
//! A backup the rules would remove whose objects are still under S3 Object Lock
//! (`locked_until` in the future) cannot be deleted yet: it is reported as *retained
//! until* that time instead of removed, and removed by the first pass after it.

use std::cmp::Ordering;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::api::Retention;

/// How many of the newest Failed backups are kept.
pub const KEEP_FAILED: usize = 3;

/// The retention counts of `spec.backup.retention`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the N newest backups.
    pub keep_last: u32,
    /// Keep the newest backup of each of the last N days that have backups.
    pub keep_daily: u32,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the last N months that have backups.
    pub keep_monthly: u32,
}

impl Policy {
    /// True when every count is zero: such a policy keeps everything.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

impl From<&Retention> for Policy {
    /// Negative counts (which the CRD schema rejects) count as zero.
    fn from(spec: &Retention) -> Self {
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Policy {
            keep_last: count(spec.keep_last),
            keep_daily: count(spec.keep_daily),
            keep_weekly: count(spec.keep_weekly),
            keep_monthly: count(spec.keep_monthly),
        }
    }
}

/// How a finished backup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Phase `Completed`: counts for the retention rules.
    Completed,
    /// Phase `Failed`: kept only among the [`KEEP_FAILED`] newest failures.
    Failed,
}

/// One finished TenantBackup, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The TenantBackup's name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended (`status.completionTime`).
    pub finished: Timestamp,
    /// The retain-until date of its objects under Object Lock, if any.
    pub locked_until: Option<Timestamp>,
}

/// The rule that keeps a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// `keepLast`.
    Last,
    /// `keepDaily`.
    Daily,
    /// `keepWeekly`.
    Weekly,
    /// `keepMonthly`.
    Monthly,
    /// Every count is zero, so nothing is removed.
    NoPolicy,
    /// One of the [`KEEP_FAILED`] newest Failed backups.
    Failed,
}

/// What a rule counted when it kept a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// The backup's place among the newest, from 1.
    Rank(u32),
    /// A day.
    Day(Date),
    /// An ISO 8601 week: its ISO year and number.
    Week {
        /// The ISO week-numbering year (not always the calendar year).
        year: i16,
        /// 1 to 53.
        week: i8,
    },
    /// A calendar month.
    Month {
        /// The year.
        year: i16,
        /// 1 to 12.
        month: i8,
    },
    /// Nothing was counted.
    None,
}

/// Why a backup is kept, e.g. `last 1`, `daily 2024-05-01`, `weekly 2024-W18`,
/// `monthly 2024-05`, `oldest monthly 2024-03`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The rule.
    pub rule: Rule,
    /// What it counted.
    pub period: Period,
    /// Kept as the oldest backup while the rule had counts left, although its period
    /// already had a newer one.
    pub oldest: bool,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.oldest {
            f.write_str("oldest ")?;
        }
        let rule = match self.rule {
            Rule::Last => "last",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::NoPolicy => return f.write_str("no retention rule"),
            Rule::Failed => "failed",
        };
        match self.period {
            Period::Rank(n) => write!(f, "{rule} {n}"),
            Period::Day(date) => write!(f, "{rule} {date}"),
            Period::Week { year, week } => write!(f, "{rule} {year:04}-W{week:02}"),
            Period::Month { year, month } => write!(f, "{rule} {year:04}-{month:02}"),
            Period::None => f.write_str(rule),
        }
    }
}

/// A backup that is kept, and every rule that keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The TenantBackup's name.
    pub name: String,
    /// The rules that keep it, in the order `last`, `daily`, `weekly`, `monthly`.
    pub reasons: Vec<Reason>,
}

/// A backup the rules would remove, held back by Object Lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retained {
    /// The TenantBackup's name.
    pub name: String,
    /// When its objects' lock expires.
    pub until: Timestamp,
}

impl fmt::Display for Retained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} retained until {}", self.name, self.until)
    }
}

/// What to do with a tenant's finished backups. Each list is newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backups to keep.
    pub keep: Vec<Kept>,
    /// Backups to delete, with their objects.
    pub remove: Vec<String>,
    /// Backups to delete once their Object Lock expires.
    pub retained: Vec<Retained>,
}

/// The period a rule buckets a backup into.
fn period(rule: Rule, date: Date, rank: u32) -> Period {
    match rule {
        Rule::Daily => Period::Day(date),
        Rule::Weekly => {
            let iso = date.iso_week_date();
            Period::Week {
                year: iso.year(),
                week: iso.week(),
            }
        }
        Rule::Monthly => Period::Month {
            year: date.year(),
            month: date.month(),
        },
        Rule::Last | Rule::Failed => Period::Rank(rank),
        Rule::NoPolicy => Period::None,
    }
}

/// Newest first; equal times by name, greater first (scheduled names end in their slot,
/// so the later slot counts as the newer), so the plan does not depend on input order.
fn newest_first(a: &&Backup, b: &&Backup) -> Ordering {
    b.finished
        .cmp(&a.finished)
        .then_with(|| b.name.cmp(&a.name))
}

/// Applies `policy` to a tenant's finished backups at `now`, counting days, weeks and
/// months in `tz`.
pub fn plan(policy: &Policy, backups: &[Backup], tz: &TimeZone, now: Timestamp) -> Plan {
    let mut completed: Vec<&Backup> = backups
        .iter()
        .filter(|b| b.outcome == Outcome::Completed)
        .collect();
    completed.sort_by(newest_first);
    let mut failed: Vec<&Backup> = backups
        .iter()
        .filter(|b| b.outcome == Outcome::Failed)
        .collect();
    failed.sort_by(newest_first);

    // Each backup with the reasons that keep it, or none.
    let mut decided: Vec<(&Backup, Vec<Reason>)> = Vec::with_capacity(backups.len());

    // (rule, counts left, the period of the last backup it kept)
    let mut buckets: Vec<(Rule, u32, Option<Period>)> = [
        (Rule::Last, policy.keep_last),
        (Rule::Daily, policy.keep_daily),
        (Rule::Weekly, policy.keep_weekly),
        (Rule::Monthly, policy.keep_monthly),
    ]
    .into_iter()
    .map(|(rule, count)| (rule, count, None))
    .collect();
    let oldest = completed.len().saturating_sub(1);
    for (index, backup) in completed.into_iter().enumerate() {
        if policy.is_empty() {
            let reason = Reason {
                rule: Rule::NoPolicy,
                period: Period::None,
                oldest: false,
            };
            decided.push((backup, vec![reason]));
            continue;
        }
        let date = backup.finished.to_zoned(tz.clone()).date();
        let rank = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let mut reasons = Vec::new();
        for (rule, left, last) in buckets.iter_mut() {
            if *left == 0 {
                continue;
            }
            let this = period(*rule, date, rank);
            let same = *last == Some(this);
            if !same || index == oldest {
                reasons.push(Reason {
                    rule: *rule,
                    period: this,
                    oldest: same,
                });
                *last = Some(this);
                *left -= 1;
            }
        }
        decided.push((backup, reasons));
    }

    for (index, backup) in failed.into_iter().enumerate() {
        let mut reasons = Vec::new();
        if index < KEEP_FAILED {
            reasons.push(Reason {
                rule: Rule::Failed,
                period: Period::Rank(u32::try_from(index + 1).unwrap_or(u32::MAX)),
                oldest: false,
            });
        }
        decided.push((backup, reasons));
    }

    decided.sort_by(|a, b| newest_first(&a.0, &b.0));
    let mut plan = Plan::default();
    for (backup, reasons) in decided {
        let name = backup.name.clone();
        match backup.locked_until {
            _ if !reasons.is_empty() => plan.keep.push(Kept { name, reasons }),
            Some(until) if until > now => plan.retained.push(Retained { name, until }),
            _ => plan.remove.push(name),
        }
    }
    plan
}

#[cfg(test)]
mod restic_golden;

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn policy(keep_last: u32, keep_daily: u32, keep_weekly: u32, keep_monthly: u32) -> Policy {
        Policy {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
        }
    }

    /// A Completed backup named after its completion time.
    fn done(at: &str) -> Backup {
        Backup {
            name: at.to_string(),
            outcome: Outcome::Completed,
            finished: ts(at),
            locked_until: None,
        }
    }

    fn failed(at: &str) -> Backup {
        Backup {
            outcome: Outcome::Failed,
            ..done(at)
        }
    }

    fn locked(at: &str, until: &str) -> Backup {
        Backup {
            locked_until: Some(ts(until)),
            ..done(at)
        }
    }

    /// The kept backups as `(name, "reason, reason")`, newest first.
    fn kept(plan: &Plan) -> Vec<(String, String)> {
        plan.keep
            .iter()
            .map(|k| {
                let reasons: Vec<String> = k.reasons.iter().map(Reason::to_string).collect();
                (k.name.clone(), reasons.join(", "))
            })
            .collect()
    }

    fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        rows.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const NOW: &str = "2030-01-01T00:00:00Z";

    #[test]
    fn restic_golden_files() {
        let backups: Vec<Backup> = restic_golden::SNAPSHOTS
            .iter()
            .enumerate()
            .map(|(i, at)| Backup {
                name: format!("snapshot-{i:03}"),
                ..done(at)
            })
            .collect();
        let time_of = |name: &str| {
            backups
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.finished)
                .expect("a known backup")
        };
        for (golden, [last, daily, weekly, monthly], want) in restic_golden::CASES {
            let plan = plan(
                &policy(*last, *daily, *weekly, *monthly),
                &backups,
                &TimeZone::UTC,
                ts(NOW),
            );
            let got: Vec<(Timestamp, Vec<&str>)> = plan
                .keep
                .iter()
                .map(|k| {
                    let rules = k
                        .reasons
                        .iter()
                        .map(|r| match (r.rule, r.oldest) {
                            (Rule::Last, false) => "last",
                            (Rule::Daily, false) => "daily",
                            (Rule::Weekly, false) => "weekly",
                            (Rule::Monthly, false) => "monthly",
                            _ => "unexpected",
                        })
                        .collect();
                    (time_of(&k.name), rules)
                })
                .collect();
            let want: Vec<(Timestamp, Vec<&str>)> = want
                .iter()
                .map(|(at, rules)| (ts(at), rules.to_vec()))
                .collect();
            assert_eq!(
                got, want,
                "restic golden file policy_keep_snapshots_{golden}"
            );
            assert_eq!(
                plan.keep.len() + plan.remove.len(),
                backups.len(),
                "golden file {golden}: every backup is kept or removed"
            );
            assert!(plan.retained.is_empty());
        }
    }

    /// The example of restic's documentation (`doc/060_forget.rst`): weekday backups for
    /// two weeks, an extra one on Fridays, Wednesday 30 April missed; `--keep-daily 5`.
    #[test]
    fn restic_documentation_example() {
        let backups: Vec<Backup> = [
            "2025-04-21T11:00:00Z",
            "2025-04-22T11:00:00Z",
            "2025-04-23T11:00:00Z",
            "2025-04-24T11:00:00Z",
            "2025-04-25T11:00:00Z",
            "2025-04-25T23:00:00Z",
            "2025-04-28T11:00:00Z",
            "2025-04-29T11:00:00Z",
            "2025-05-01T11:00:00Z",
            "2025-05-02T11:00:00Z",
            "2025-05-02T23:00:00Z",
        ]
        .iter()
        .map(|at| done(at))
        .collect();
        let plan = plan(&policy(0, 5, 0, 0), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("2025-05-02T23:00:00Z", "daily 2025-05-02"),
                ("2025-05-01T11:00:00Z", "daily 2025-05-01"),
                ("2025-04-29T11:00:00Z", "daily 2025-04-29"),
                ("2025-04-28T11:00:00Z", "daily 2025-04-28"),
                ("2025-04-25T23:00:00Z", "daily 2025-04-25"),
            ])
        );
        assert_eq!(
            plan.remove,
            vec![
                "2025-05-02T11:00:00Z",
                "2025-04-25T11:00:00Z",
                "2025-04-24T11:00:00Z",
                "2025-04-23T11:00:00Z",
                "2025-04-22T11:00:00Z",
                "2025-04-21T11:00:00Z",
            ]
        );
    }

    /// Daily backups at 03:10 UTC from Monday 6 April to Sunday 10 May 2026, with no
    /// backups from 20 to 26 April (a whole ISO week, 17) nor on 6 and 7 May.
    fn five_weeks_with_gaps() -> Vec<Backup> {
        let first: Date = "2026-04-06".parse().expect("a date");
        (0..35)
            .filter_map(|day| first.checked_add(jiff::Span::new().days(day)).ok())
            .filter(|d| {
                let s = d.to_string();
                !(("2026-04-20".."2026-04-27").contains(&s.as_str())
                    || s == "2026-05-06"
                    || s == "2026-05-07")
            })
            .map(|d| done(&format!("{d}T03:10:00Z")))
            .collect()
    }

    #[test]
    fn daily_weekly_monthly_over_weeks_with_gaps() {
        let backups = five_weeks_with_gaps();
        assert_eq!(backups.len(), 26);
        let plan = plan(&policy(2, 5, 4, 2), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&plan),
            pairs(&[
                (
                    "2026-05-10T03:10:00Z",
                    "last 1, daily 2026-05-10, weekly 2026-W19, monthly 2026-05"
                ),
                ("2026-05-09T03:10:00Z", "last 2, daily 2026-05-09"),
                ("2026-05-08T03:10:00Z", "daily 2026-05-08"),
                // 6 and 7 May have no backups, so the days reach back further.
                ("2026-05-05T03:10:00Z", "daily 2026-05-05"),
                ("2026-05-04T03:10:00Z", "daily 2026-05-04"),
                ("2026-05-03T03:10:00Z", "weekly 2026-W18"),
                // Week 17 has no backups: the fourth week kept is week 15.
                ("2026-04-30T03:10:00Z", "monthly 2026-04"),
                ("2026-04-19T03:10:00Z", "weekly 2026-W16"),
                ("2026-04-12T03:10:00Z", "weekly 2026-W15"),
            ])
        );
        assert_eq!(plan.keep.len() + plan.remove.len(), backups.len());
        assert!(plan.remove.contains(&"2026-04-06T03:10:00Z".to_string()));
        assert!(!plan.remove.contains(&"2026-04-12T03:10:00Z".to_string()));
    }

    #[test]
    fn the_oldest_backup_is_kept_while_a_rule_has_counts_left() {
        let backups = vec![
            done("2026-03-02T03:00:00Z"),
            done("2026-03-20T03:00:00Z"),
            done("2026-04-10T03:00:00Z"),
            done("2026-05-01T03:00:00Z"),
        ];
        let plan12 = plan(&policy(0, 0, 0, 12), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&plan12),
            pairs(&[
                ("2026-05-01T03:00:00Z", "monthly 2026-05"),
                ("2026-04-10T03:00:00Z", "monthly 2026-04"),
                ("2026-03-20T03:00:00Z", "monthly 2026-03"),
                ("2026-03-02T03:00:00Z", "oldest monthly 2026-03"),
            ])
        );
        assert!(plan12.remove.is_empty());
        // With exactly as many counts as months, nothing is left for the oldest.
        let plan3 = plan(&policy(0, 0, 0, 3), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(plan3.keep.len(), 3);
        assert_eq!(plan3.remove, vec!["2026-03-02T03:00:00Z"]);
    }

    #[test]
    fn months_are_those_of_the_time_zone() {
        // 22:30 UTC on 31 May is 00:30 on 1 June in Berlin.
        let backups = vec![
            done("2026-05-30T22:30:00Z"),
            done("2026-05-31T22:30:00Z"),
            done("2026-06-01T22:30:00Z"),
        ];
        let utc = plan(&policy(0, 0, 0, 2), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&utc),
            pairs(&[
                ("2026-06-01T22:30:00Z", "monthly 2026-06"),
                ("2026-05-31T22:30:00Z", "monthly 2026-05"),
            ])
        );
        let berlin = jiff::tz::db().get("Europe/Berlin").expect("Europe/Berlin");
        let local = plan(&policy(0, 0, 0, 2), &backups, &berlin, ts(NOW));
        assert_eq!(
            kept(&local),
            pairs(&[
                ("2026-06-01T22:30:00Z", "monthly 2026-06"),
                ("2026-05-30T22:30:00Z", "monthly 2026-05"),
            ])
        );
        assert_eq!(local.remove, vec!["2026-05-31T22:30:00Z"]);
        // Days too: both of these are 25 October in Berlin.
        let backups = vec![done("2026-10-24T22:30:00Z"), done("2026-10-25T21:30:00Z")];
        let local = plan(&policy(0, 1, 0, 0), &backups, &berlin, ts(NOW));
        assert_eq!(
            kept(&local),
            pairs(&[("2026-10-25T21:30:00Z", "daily 2026-10-25")])
        );
        let utc = plan(&policy(0, 2, 0, 0), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(utc.keep.len(), 2);
    }

    #[test]
    fn iso_weeks_across_the_year_end() {
        // 2026 has an ISO week 53 (Monday 28 December to Sunday 3 January 2027);
        // 3 January 2021 is in week 53 of 2020.
        let backups = vec![
            done("2020-12-31T12:00:00Z"),
            done("2021-01-03T12:00:00Z"),
            done("2021-01-04T12:00:00Z"),
            done("2026-12-27T12:00:00Z"),
            done("2026-12-28T12:00:00Z"),
            done("2027-01-01T12:00:00Z"),
            done("2027-01-03T12:00:00Z"),
            done("2027-01-04T12:00:00Z"),
        ];
        let plan = plan(&policy(0, 0, 10, 0), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("2027-01-04T12:00:00Z", "weekly 2027-W01"),
                ("2027-01-03T12:00:00Z", "weekly 2026-W53"),
                ("2026-12-27T12:00:00Z", "weekly 2026-W52"),
                ("2021-01-04T12:00:00Z", "weekly 2021-W01"),
                ("2021-01-03T12:00:00Z", "weekly 2020-W53"),
                // Counts are left at the oldest backup, so it stays.
                ("2020-12-31T12:00:00Z", "oldest weekly 2020-W53"),
            ])
        );
        assert_eq!(
            plan.remove,
            vec!["2027-01-01T12:00:00Z", "2026-12-28T12:00:00Z"]
        );
    }

    #[test]
    fn object_lock_retains_what_the_rules_remove() {
        let now = "2026-05-10T12:00:00Z";
        let backups = vec![
            locked("2026-05-07T03:00:00Z", "2026-06-07T03:00:00Z"),
            locked("2026-05-08T03:00:00Z", "2026-05-10T11:59:59Z"),
            done("2026-05-09T03:00:00Z"),
            locked("2026-05-10T03:00:00Z", "2026-06-10T03:00:00Z"),
        ];
        let plan = plan(&policy(1, 0, 0, 0), &backups, &TimeZone::UTC, ts(now));
        assert_eq!(kept(&plan), pairs(&[("2026-05-10T03:00:00Z", "last 1")]));
        // The lock of 8 May has just expired: removed. That of 7 May has not.
        assert_eq!(
            plan.remove,
            vec!["2026-05-09T03:00:00Z", "2026-05-08T03:00:00Z"]
        );
        assert_eq!(
            plan.retained,
            vec![Retained {
                name: "2026-05-07T03:00:00Z".to_string(),
                until: ts("2026-06-07T03:00:00Z"),
            }]
        );
        assert_eq!(
            plan.retained[0].to_string(),
            "2026-05-07T03:00:00Z retained until 2026-06-07T03:00:00Z"
        );
    }

    #[test]
    fn failed_backups_never_count_and_only_the_newest_few_stay() {
        let mut backups = vec![
            done("2026-05-01T03:00:00Z"),
            done("2026-05-02T03:00:00Z"),
            failed("2026-05-03T03:00:00Z"),
            failed("2026-05-04T03:00:00Z"),
            failed("2026-05-05T03:00:00Z"),
            failed("2026-05-06T03:00:00Z"),
            failed("2026-05-07T03:00:00Z"),
        ];
        backups[3].locked_until = Some(ts("2031-01-01T00:00:00Z"));
        let plan = plan(&policy(2, 0, 0, 0), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("2026-05-07T03:00:00Z", "failed 1"),
                ("2026-05-06T03:00:00Z", "failed 2"),
                ("2026-05-05T03:00:00Z", "failed 3"),
                // keepLast 2 keeps the two newest *completed* backups.
                ("2026-05-02T03:00:00Z", "last 1"),
                ("2026-05-01T03:00:00Z", "last 2"),
            ])
        );
        assert_eq!(plan.remove, vec!["2026-05-03T03:00:00Z"]);
        assert_eq!(plan.retained.len(), 1);
        assert_eq!(plan.retained[0].name, "2026-05-04T03:00:00Z");
    }

    #[test]
    fn an_empty_policy_removes_nothing() {
        let backups = five_weeks_with_gaps();
        let plan = plan(&Policy::default(), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(plan.keep.len(), backups.len());
        assert!(plan.remove.is_empty());
        assert_eq!(plan.keep[0].reasons[0].to_string(), "no retention rule");
    }

    #[test]
    fn input_order_and_equal_times_do_not_change_the_plan() {
        let mut backups = five_weeks_with_gaps();
        backups.push(Backup {
            name: "z-twin".to_string(),
            ..done("2026-05-10T03:10:00Z")
        });
        let forward = plan(&policy(1, 3, 2, 1), &backups, &TimeZone::UTC, ts(NOW));
        backups.reverse();
        let backward = plan(&policy(1, 3, 2, 1), &backups, &TimeZone::UTC, ts(NOW));
        assert_eq!(forward, backward);
        // Of two backups completed at the same instant, the greater name is newest.
        assert_eq!(forward.keep[0].name, "z-twin");
    }

    #[test]
    fn policy_from_the_spec() {
        let spec = Retention {
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: -1,
            keep_monthly: 12,
        };
        assert_eq!(Policy::from(&spec), policy(3, 7, 0, 12));
        assert_eq!(Policy::from(&Retention::default()), policy(7, 0, 0, 0));
    }
}
