//! Retention per destination, decided from berth's own records of what it
//! wrote there (never by listing files and matching names: dokploy#2074,
//! #3855; coolify#5698). The caller deletes what [`plan_deletions`] returns
//! and then drops those records.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

/// One artifact berth wrote to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord<Id> {
    pub id: Id,
    pub created_at: DateTime<Utc>,
    pub size: u64,
    /// Complete, with a matching checksum (and not failed a drill): one that
    /// restores. Only good backups count towards "keep the last N".
    pub good: bool,
}

/// Limits for one destination; `None` is no limit. The first limit reached wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<usize>,
    pub max_age: Option<Duration>,
    pub max_total_bytes: Option<u64>,
}

/// The ids to delete, oldest first. The newest good backup is never among
/// them, whatever the policy says: a limit of 0 or an old last backup must
/// not leave a database with nothing to restore.
pub fn plan_deletions<Id: Clone + Eq + std::hash::Hash>(
    records: &[BackupRecord<Id>],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<Id> {
    let mut newest_first: Vec<&BackupRecord<Id>> = records.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let protected = newest_first.iter().find(|r| r.good).map(|r| r.id.clone());

    let mut delete: HashSet<Id> = HashSet::new();
    let mut good_seen = 0usize;
    let mut total = 0u64;
    for r in &newest_first {
        let too_many = r.good
            && policy.keep_last.is_some_and(|n| {
                good_seen += 1;
                good_seen > n
            });
        let too_old = policy.max_age.is_some_and(|age| now - r.created_at > age);
        total = total.saturating_add(r.size);
        let too_big = policy.max_total_bytes.is_some_and(|max| total > max);
        if (too_many || too_old || too_big) && protected.as_ref() != Some(&r.id) {
            delete.insert(r.id.clone());
        }
    }
    newest_first
        .iter()
        .rev()
        .filter(|r| delete.contains(&r.id))
        .map(|r| r.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, d, 3, 0, 0).unwrap()
    }

    /// Ten good daily backups of 100 bytes each, ids 1 (oldest) to 10, listed out of order.
    fn ten() -> Vec<BackupRecord<u32>> {
        let mut v: Vec<_> = (1..=10)
            .map(|i| BackupRecord {
                id: i,
                created_at: day(i),
                size: 100,
                good: true,
            })
            .collect();
        v.swap(0, 7);
        v.swap(3, 9);
        v
    }

    #[test]
    fn keep_last_deletes_exactly_the_oldest() {
        let p = RetentionPolicy {
            keep_last: Some(7),
            ..Default::default()
        };
        assert_eq!(plan_deletions(&ten(), &p, day(11)), [1, 2, 3]);
    }

    #[test]
    fn max_age_deletes_exactly_those_older_than_it() {
        let p = RetentionPolicy {
            max_age: Some(Duration::days(4)),
            ..Default::default()
        };
        // Now is day 11 03:00: days 7..10 are at most 4 days old.
        assert_eq!(plan_deletions(&ten(), &p, day(11)), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn max_total_size_keeps_the_newest_that_fit() {
        let p = RetentionPolicy {
            max_total_bytes: Some(450),
            ..Default::default()
        };
        assert_eq!(plan_deletions(&ten(), &p, day(11)), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_first_limit_reached_wins() {
        let p = RetentionPolicy {
            keep_last: Some(8),
            max_age: Some(Duration::days(30)),
            max_total_bytes: Some(500),
        };
        assert_eq!(plan_deletions(&ten(), &p, day(11)), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn no_policy_deletes_nothing() {
        assert!(plan_deletions(&ten(), &RetentionPolicy::default(), day(11)).is_empty());
    }

    #[test]
    fn the_newest_good_backup_survives_any_policy() {
        let mut records = ten();
        // The two newest failed their drills: day 8 is the newest good one.
        for r in &mut records {
            if r.id >= 9 {
                r.good = false;
            }
        }
        let p = RetentionPolicy {
            keep_last: Some(0),
            max_age: Some(Duration::days(0)),
            max_total_bytes: Some(0),
        };
        let deleted = plan_deletions(
            &records,
            &p,
            Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        );
        assert_eq!(deleted, [1, 2, 3, 4, 5, 6, 7, 9, 10]);
    }

    #[test]
    fn bad_backups_do_not_count_towards_keep_last() {
        let mut records = ten();
        for r in &mut records {
            if r.id == 10 {
                r.good = false;
            }
        }
        let p = RetentionPolicy {
            keep_last: Some(3),
            ..Default::default()
        };
        // Keeps good 9, 8, 7 (and the bad 10, which no limit here removes).
        assert_eq!(plan_deletions(&records, &p, day(11)), [1, 2, 3, 4, 5, 6]);
    }
}
