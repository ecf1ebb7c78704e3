//! Job (upstream's JobController): runs pods until `completions` of them
//! succeed (`parallelism` at a time; in Indexed mode one per completion
//! index), gives up after `backoffLimit` failures or `activeDeadlineSeconds`,
//! stops its pods while suspended, and reports `Complete` or `Failed` (after
//! `SuccessCriteriaMet` / `FailureTarget`, as upstream).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::informer::Subscription;
use crate::replicaset::{controller_ref, is_pod_ready};
use crate::{Result, now};

const INDEX: &str = "batch.kubernetes.io/job-completion-index";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, pods: Subscription) {
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .owns_shared_stream(pods.into_pods())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("job: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn has_condition(s: Option<&JobStatus>, type_: &str) -> bool {
    s.and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action> {
    let old = job.status.clone().unwrap_or_default();
    if job.metadata.deletion_timestamp.is_some() || has_condition(Some(&old), "Complete") || has_condition(Some(&old), "Failed") {
        return Ok(Action::await_change());
    }
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Pod> = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    let active: Vec<&Pod> = owned.iter().filter(|p| !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none()).collect();
    let succeeded = owned.iter().filter(|p| phase(p) == "Succeeded").count() as i32;
    let failed = owned.iter().filter(|p| phase(p) == "Failed").count() as i32;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1);
    let mut status = JobStatus {
        start_time: old.start_time.clone().or_else(|| (spec.suspend != Some(true)).then(now)),
        active: Some(active.len() as i32),
        succeeded: Some(succeeded),
        failed: Some(failed),
        ready: Some(active.iter().filter(|p| is_pod_ready(p)).count() as i32),
        terminating: Some(0),
        conditions: old.conditions.clone(),
        uncounted_terminated_pods: Some(Default::default()),
        ..Default::default()
    };
    let done_indexes: BTreeSet<i32> =
        owned.iter().filter(|p| phase(p) == "Succeeded").filter_map(|p| p.annotations().get(INDEX)?.parse().ok()).collect();
    if indexed && !done_indexes.is_empty() {
        status.completed_indexes = Some(done_indexes.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    }
    let complete = match completions {
        Some(c) if indexed => done_indexes.len() as i32 >= c,
        Some(c) => succeeded >= c,
        // A work queue: done once one pod succeeded and none runs.
        None => succeeded > 0 && active.is_empty(),
    };
    let deadline_passed = match (spec.active_deadline_seconds, status.start_time.as_ref()) {
        (Some(d), Some(t)) => k8s_openapi::jiff::Timestamp::now().duration_since(t.0).as_secs() >= d,
        _ => false,
    };
    let mut finish: Option<(JobCondition, JobCondition)> = None;
    if complete {
        finish = Some((
            condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
            condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
        ));
    } else if failed > spec.backoff_limit.unwrap_or(6) {
        finish = Some((
            condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ));
    } else if deadline_passed {
        finish = Some((
            condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),
            condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
        ));
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some((target, last)) = finish {
        for p in &active {
            let _ = pods.delete(&p.name_any(), &DeleteParams::background()).await;
        }
        let conds = status.conditions.get_or_insert_with(Vec::new);
        conds.push(target);
        if last.type_ == "Complete" {
            status.completion_time = Some(now());
        }
        conds.push(last);
        status.active = Some(0);
        status.ready = Some(0);
    } else if spec.suspend == Some(true) {
        for p in &active {
            let _ = pods.delete(&p.name_any(), &DeleteParams::background()).await;
        }
        status.active = Some(0);
        let conds = status.conditions.get_or_insert_with(Vec::new);
        if !conds.iter().any(|c| c.type_ == "Suspended" && c.status == "True") {
            conds.retain(|c| c.type_ != "Suspended");
            conds.push(condition("Suspended", "JobSuspended", "Job suspended"));
        }
    } else {
        if let Some(conds) = status.conditions.as_mut() {
            conds.retain(|c| c.type_ != "Suspended");
        }
        // Which pods to start: free indexes (Indexed), or as many as parallelism allows.
        let remaining = completions.map(|c| c - succeeded).unwrap_or(parallelism).max(0);
        let want = parallelism.min(if indexed { completions.unwrap_or(1) - done_indexes.len() as i32 } else { remaining }).max(0);
        let running_indexes: BTreeSet<i32> = active.iter().filter_map(|p| p.annotations().get(INDEX)?.parse().ok()).collect();
        let mut free_indexes = (0..completions.unwrap_or(1)).filter(|i| !done_indexes.contains(i) && !running_indexes.contains(i));
        let template = spec.template.clone();
        for _ in active.len() as i32..want {
            let mut meta = template.metadata.clone().unwrap_or_default();
            meta.namespace = Some(ns.clone());
            meta.owner_references = Some(vec![controller_ref(job.as_ref())]);
            if indexed {
                let Some(i) = free_indexes.next() else { break };
                meta.generate_name = Some(format!("{}-{i}-", job.name_any()));
                meta.annotations.get_or_insert_with(Default::default).insert(INDEX.into(), i.to_string());
                meta.labels.get_or_insert_with(Default::default).insert(INDEX.into(), i.to_string());
            } else {
                meta.generate_name = Some(format!("{}-", job.name_any()));
            }
            let pod = Pod { metadata: meta, spec: template.spec.clone(), status: None };
            pods.create(&PostParams::default(), &pod).await?;
        }
    }
    let strip = |s: &JobStatus| {
        let mut s = s.clone();
        s.start_time = None;
        for c in s.conditions.iter_mut().flatten() {
            c.last_probe_time = None;
            c.last_transition_time = None;
        }
        s
    };
    if strip(&old) != strip(&status) || old.start_time.is_none() && status.start_time.is_some() {
        jobs.patch_status(&job.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    // The deadline needs a clock, not an event.
    Ok(match spec.active_deadline_seconds {
        Some(d) => Action::requeue(Duration::from_secs(d.max(1) as u64)),
        None => Action::await_change(),
    })
}
