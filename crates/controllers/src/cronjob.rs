//! CronJob (upstream's CronJobControllerV2): at each time its schedule names
//! (five-field cron or `@hourly`-style macros, in `timeZone` from the
//! system's tz database, else UTC), creates a Job from
//! the template, named after the CronJob and the scheduled minute;
//! `concurrencyPolicy` decides what happens to a run still active (Allow,
//! Forbid, Replace); `suspend` stops new runs; finished Jobs beyond the
//! history limits are deleted. The loop wakes at the next scheduled time.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::{Timestamp, ToSpan, tz::TimeZone};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::replicaset::controller_ref;
use crate::{Error, Result};

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) {
    let cronjobs: Api<CronJob> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(cronjobs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("cronjob: {e}");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

/// One field of a cron expression: the values it allows.
fn field(spec: &str, min: u32, max: u32) -> Option<Vec<bool>> {
    let mut allowed = vec![false; (max + 1) as usize];
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let v = r.parse().ok()?;
                    (v, if part.contains('/') { max } else { v })
                }
            },
        };
        if lo < min || hi > max || lo > hi {
            return None;
        }
        for v in (lo..=hi).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Some(allowed)
}

/// A parsed schedule: minute, hour, day of month, month, day of week.
pub struct Schedule([Vec<bool>; 5], bool, bool, TimeZone);

impl Schedule {
    pub fn parse(s: &str) -> Option<Schedule> {
        let s = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts.as_slice() else { return None };
        let mut dow_f = field(&dow.replace('7', "0"), 0, 6)?;
        if dow.contains('7') {
            dow_f[0] = true;
        }
        Some(Schedule([field(m, 0, 59)?, field(h, 0, 23)?, field(dom, 1, 31)?, field(mon, 1, 12)?, dow_f], *dom != "*", *dow != "*", TimeZone::UTC))
    }

    /// The schedule read in a named time zone ("Europe/Paris").
    pub fn in_zone(mut self, name: &str) -> Result<Schedule, String> {
        self.3 = TimeZone::get(name).map_err(|e| format!("invalid timeZone: {name:?}: {e}"))?;
        Ok(self)
    }

    fn matches(&self, t: Timestamp) -> bool {
        let z = t.to_zoned(self.3.clone());
        let [m, h, dom, mon, dow] = &self.0;
        let day = dom[z.day() as usize];
        let weekday = dow[z.weekday().to_sunday_zero_offset() as usize];
        // Cron's rule: when both day fields are restricted, either may match.
        let day_ok = if self.1 && self.2 { day || weekday } else { day && weekday };
        m[z.minute() as usize] && h[z.hour() as usize] && mon[z.month() as usize] && day_ok
    }

    /// The latest scheduled minute in (after, now].
    fn last_between(&self, after: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let mut t = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60)).ok()?;
        // At most a year back, as upstream bounds missed runs.
        for _ in 0..(366 * 24 * 60) {
            if t <= after {
                return None;
            }
            if self.matches(t) {
                return Some(t);
            }
            t = t.checked_sub(1.minutes()).ok()?;
        }
        None
    }

    fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let mut t = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60) + 60).ok()?;
        for _ in 0..(366 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t = t.checked_add(1.minutes()).ok()?;
        }
        None
    }
}

fn finished(j: &Job) -> Option<&str> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let spec = cj.spec.clone();
    let Some(schedule) = Schedule::parse(&spec.schedule) else {
        return Err(Error::Other(format!("unparseable schedule {:?}", spec.schedule)));
    };
    let schedule = match spec.time_zone.as_deref() {
        None | Some("") => schedule,
        Some(tz) => match schedule.in_zone(tz) {
            Ok(s) => s,
            Err(msg) => {
                // As upstream: said once as an event, then nothing runs until the spec changes.
                crate::events::warn(&ctx.client, &*cj, "cronjob-controller", "UnknownTimeZone", &msg).await;
                return Ok(Action::await_change());
            }
        },
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned: Vec<Job> =
        jobs.list(&ListParams::default()).await?.items.into_iter().filter(|j| j.owner_references().iter().any(|o| o.uid == uid)).collect();
    owned.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let now = Timestamp::now();
    let status = cj.status.clone().unwrap_or_default();
    let since = status.last_schedule_time.as_ref().or(cj.metadata.creation_timestamp.as_ref()).map(|t| t.0).unwrap_or(now);
    let mut last_schedule = status.last_schedule_time.clone();
    if spec.suspend != Some(true)
        && let Some(at) = schedule.last_between(since, now)
    {
        let active: Vec<&Job> = owned.iter().filter(|j| finished(j).is_none()).collect();
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let late = spec.starting_deadline_seconds.is_some_and(|d| now.as_second() - at.as_second() > d);
        if !late && (policy != "Forbid" || active.is_empty()) {
            if policy == "Replace" {
                for j in &active {
                    let _ = jobs.delete(&j.name_any(), &DeleteParams::background()).await;
                }
            }
            let template = spec.job_template.clone();
            let mut meta = template.metadata.clone().unwrap_or_default();
            meta.name = Some(format!("{}-{}", cj.name_any(), at.as_second() / 60));
            meta.namespace = Some(ns.clone());
            meta.owner_references = Some(vec![controller_ref(cj.as_ref())]);
            meta.annotations.get_or_insert_with(Default::default).insert("batch.kubernetes.io/cronjob-scheduled-timestamp".into(), at.to_string());
            let job = Job { metadata: meta, spec: template.spec, status: None };
            match jobs.create(&PostParams::default(), &job).await {
                Ok(j) => owned.push(j),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        last_schedule = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
    }
    // History: the newest finished Jobs within the limits stay.
    for (kind, limit) in [("Complete", spec.successful_jobs_history_limit.unwrap_or(3)), ("Failed", spec.failed_jobs_history_limit.unwrap_or(1))] {
        let done: Vec<&Job> = owned.iter().filter(|j| finished(j) == Some(kind)).collect();
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for j in &done[..extra] {
            let _ = jobs.delete(&j.name_any(), &DeleteParams::background()).await;
        }
    }
    let active: Vec<ObjectReference> = owned
        .iter()
        .filter(|j| finished(j).is_none())
        .map(|j| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(j.name_any()),
            namespace: Some(ns.clone()),
            uid: j.uid(),
            ..Default::default()
        })
        .collect();
    let last_success = owned
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max_by_key(|t| t.0)
        .or(status.last_successful_time.clone());
    let desired =
        CronJobStatus { active: (!active.is_empty()).then_some(active), last_schedule_time: last_schedule, last_successful_time: last_success };
    if desired != status {
        let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        cronjobs.patch_status(&cj.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": desired}))).await?;
    }
    let wait = schedule.next_after(now).map(|t| (t.as_second() - now.as_second()).max(1) as u64).unwrap_or(60);
    Ok(Action::requeue(Duration::from_secs(wait)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn schedules() {
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        assert!(every5.matches(at("2026-12-01T10:05:00Z")) && !every5.matches(at("2026-12-01T10:06:00Z")));
        let weekdays9 = Schedule::parse("0 9 * * 1-5").unwrap();
        assert!(weekdays9.matches(at("2026-12-01T09:00:00Z")), "a Tuesday");
        assert!(!weekdays9.matches(at("2026-12-06T09:00:00Z")), "a Sunday");
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(hourly.last_between(at("2026-12-01T08:30:00Z"), at("2026-12-01T10:17:30Z")), Some(at("2026-12-01T10:00:00Z")));
        assert_eq!(hourly.last_between(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:17:30Z")), None);
        assert_eq!(hourly.next_after(at("2026-12-01T10:17:30Z")), Some(at("2026-12-01T11:00:00Z")));
        // 09:00 in Tokyo (UTC+9, no daylight saving) is midnight UTC.
        let tokyo = Schedule::parse("0 9 * * *").unwrap().in_zone("Asia/Tokyo").unwrap();
        assert!(tokyo.matches(at("2026-12-01T00:00:00Z")) && !tokyo.matches(at("2026-12-01T09:00:00Z")));
        // New York: 09:00 is 14:00 UTC in winter and 13:00 UTC in summer.
        let ny = Schedule::parse("0 9 * * *").unwrap().in_zone("America/New_York").unwrap();
        assert!(ny.matches(at("2026-12-01T14:00:00Z")) && ny.matches(at("2026-07-01T13:00:00Z")));
        assert!(Schedule::parse("0 9 * * *").unwrap().in_zone("Mars/Olympus").is_err());
        for bad in ["", "* * * *", "61 * * * *", "*/0 * * * *", "a b c d e"] {
            assert!(Schedule::parse(bad).is_none(), "{bad:?}");
        }
    }
}
