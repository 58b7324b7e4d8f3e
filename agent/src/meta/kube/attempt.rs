//! Attempt numbers from the API (CONTRACT §4): a pod's place among the pods of its Job, counted
//! per completion index for Indexed Jobs, or the Job controller's own failure count when it keeps
//! one (`backoffLimitPerIndex`).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Label (since v1.28) and annotation (older) of an Indexed Job's pods.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Failures of the pod's index before it, kept by the controller under `backoffLimitPerIndex`.
pub const FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// What attempt numbering needs to know of one pod of a Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub uid: String,
    pub name: String,
    /// `creationTimestamp` in nanoseconds (second precision on the wire, hence the name tie-break).
    pub created: i128,
    pub index: Option<u32>,
}

impl Member {
    pub fn of(pod: &Pod) -> Option<Member> {
        let meta = &pod.metadata;
        Some(Member {
            uid: meta.uid.clone()?,
            name: meta.name.clone()?,
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_nanosecond()),
            index: completion_index(meta),
        })
    }

    fn before(&self, other: &Member) -> bool {
        (self.created, &self.name) < (other.created, &other.name)
    }
}

/// The label wins over the annotation: both are set by current controllers, and only the
/// annotation by those before PodIndexLabel.
pub fn completion_index(meta: &ObjectMeta) -> Option<u32> {
    number_at(meta.labels.as_ref(), COMPLETION_INDEX)
        .or_else(|| number_at(meta.annotations.as_ref(), COMPLETION_INDEX))
}

pub fn failure_count(meta: &ObjectMeta) -> Option<u32> {
    number_at(meta.annotations.as_ref(), FAILURE_COUNT)
}

fn number_at(map: Option<&std::collections::BTreeMap<String, String>>, key: &str) -> Option<u32> {
    map?.get(key)?.trim().parse().ok()
}

/// 1 + the Job's pods of the same completion index created before `me` (ordered by creation
/// time, then name). `members` may include `me` and pods long deleted from the API.
pub fn attempt_among<'a>(me: &Member, members: impl IntoIterator<Item = &'a Member>) -> u32 {
    let earlier = members
        .into_iter()
        .filter(|m| m.uid != me.uid && m.index == me.index && m.before(me))
        .count();
    1 + earlier as u32
}

/// The attempt the Job controller's failure count gives, when it keeps one: it survives the pod
/// GC removing earlier pods, which counting pods does not.
pub fn from_failure_count(meta: &ObjectMeta) -> Option<u32> {
    failure_count(meta).map(|failures| failures.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, created: &str, index: Option<u32>) -> Member {
        Member {
            uid: format!("uid-{name}"),
            name: name.into(),
            created: crate::clock::rfc3339_nanos(created).unwrap(),
            index,
        }
    }

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    }

    #[test]
    fn attempts_follow_creation_time_not_list_order() {
        let pods = [
            member("job-ccccc", "2026-11-27T14:55:13Z", None),
            member("job-zzzzz", "2026-11-27T14:53:39Z", None),
            member("job-bbbbb", "2026-11-27T14:54:21Z", None),
        ];
        let attempts: Vec<u32> = pods.iter().map(|p| attempt_among(p, &pods)).collect();
        assert_eq!(attempts, [3, 1, 2]);
    }

    #[test]
    fn same_second_is_ordered_by_name() {
        let a = member("job-bbbbb", "2026-11-27T14:53:39Z", None);
        let b = member("job-aaaaa", "2026-11-27T14:53:39Z", None);
        let all = [a.clone(), b.clone()];
        assert_eq!((attempt_among(&b, &all), attempt_among(&a, &all)), (1, 2));
    }

    #[test]
    fn indexed_jobs_count_per_completion_index() {
        let all = [
            member("indexed-0-k4tkj", "2026-11-27T14:53:39Z", Some(0)),
            member("indexed-1-pwkgk", "2026-11-27T14:53:39Z", Some(1)),
            member("indexed-1-bbstw", "2026-11-27T14:53:43Z", Some(1)),
        ];
        let attempts: Vec<u32> = all.iter().map(|p| attempt_among(p, &all)).collect();
        assert_eq!(attempts, [1, 1, 2]);
    }

    #[test]
    fn a_pod_alone_is_attempt_1_and_duplicates_do_not_count() {
        let me = member("job-x7k2p", "2026-11-27T14:53:39Z", None);
        assert_eq!(attempt_among(&me, []), 1);
        assert_eq!(attempt_among(&me, [&me, &me]), 1);
    }

    #[test]
    fn failure_count_wins_over_the_pods_left_in_the_api() {
        // The first pod of index 2 was removed by the pod GC: only the count knows it existed.
        let me = member("indexed-pi-2-sbznc", "2026-11-27T14:56:15Z", Some(2));
        let p = pod(&[(FAILURE_COUNT, "1"), (COMPLETION_INDEX, "2")]);
        assert_eq!(from_failure_count(&p.metadata), Some(2));
        assert_eq!(attempt_among(&me, [&me]), 1, "what counting pods would say");
        assert_eq!(completion_index(&p.metadata), Some(2));
        assert_eq!(from_failure_count(&pod(&[]).metadata), None);
    }

    #[test]
    fn index_label_wins_and_garbage_is_ignored() {
        let mut p = pod(&[(COMPLETION_INDEX, "4"), (FAILURE_COUNT, "x")]);
        p.metadata.labels = Some([(COMPLETION_INDEX.to_string(), "3".to_string())].into());
        assert_eq!(completion_index(&p.metadata), Some(3));
        assert_eq!(failure_count(&p.metadata), None);
    }
}
