//! Metadata from the log path alone (`--kube off`): namespace, pod and uid from the pod folder
//! name, job, cronjob and completion index from the pod name.

use crate::contract::is_safe_segment;

/// A pod folder of the log dir: `{namespace}_{pod}_{uid}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodDir {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
}

impl PodDir {
    /// Namespaces and pod names are DNS-1123 names, so they never hold `_`: the first and the
    /// last `_` split the folder name. Names that do not parse, or that could break out of a key
    /// partition, are refused.
    pub fn parse(folder: &str) -> Option<PodDir> {
        let (namespace, rest) = folder.split_once('_')?;
        let (pod, uid) = rest.rsplit_once('_')?;
        let ok = [namespace, pod, uid]
            .iter()
            .all(|s| is_safe_segment(s) && !s.contains('_'));
        ok.then(|| PodDir {
            namespace: namespace.into(),
            pod: pod.into(),
            uid: uid.into(),
        })
    }
}

/// Job, cronjob and completion index guessed from a pod name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobGuess {
    pub job: String,
    pub cronjob: Option<String>,
    pub completion_index: Option<u32>,
}

/// The Job controller names pods `<job>-<suffix>` (Indexed: `<job>-<index>-<suffix>`), the
/// suffix being 5 characters of the apiserver's generateName alphabet. A CronJob names its Jobs
/// `<cronjob>-<scheduled time in minutes since the epoch>`: a trailing number is such a time when
/// it lies in a plausible range of minutes (2001..2200), otherwise a completion index.
pub fn guess_job(pod: &str) -> JobGuess {
    let base = strip_generated_suffix(pod);
    let (base, completion_index) = match split_number(base) {
        Some((head, n)) if !is_schedule_minutes(n) && n <= u32::MAX as u64 => {
            (head, Some(n as u32))
        }
        _ => (base, None),
    };
    let cronjob = match split_number(base) {
        Some((head, n)) if is_schedule_minutes(n) => Some(head.to_string()),
        _ => None,
    };
    JobGuess {
        job: base.to_string(),
        cronjob,
        completion_index,
    }
}

fn strip_generated_suffix(pod: &str) -> &str {
    // Alphabet of k8s.io/apimachinery's rand.String: no vowels, no 0/1/3 to avoid words.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    match pod.rsplit_once('-') {
        Some((head, suffix))
            if !head.is_empty()
                && suffix.len() == 5
                && suffix.bytes().all(|b| ALPHABET.contains(&b)) =>
        {
            head
        }
        _ => pod,
    }
}

fn split_number(name: &str) -> Option<(&str, u64)> {
    let (head, tail) = name.rsplit_once('-')?;
    if head.is_empty()
        || tail.is_empty()
        || tail.len() > 12
        || !tail.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((head, tail.parse().ok()?))
}

fn is_schedule_minutes(n: u64) -> bool {
    // 2001-01-01 .. 2200-01-01 in minutes since the epoch.
    (16_306_560..=120_964_320).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_folders_parse_and_bad_ones_are_refused() {
        let d = PodDir::parse("default_exit-nonzero-94945_f5d2a146-ed30-42ed-96d6-8cdba53b70dd")
            .unwrap();
        assert_eq!(
            (d.namespace.as_str(), d.pod.as_str()),
            ("default", "exit-nonzero-94945")
        );
        assert_eq!(d.uid, "f5d2a146-ed30-42ed-96d6-8cdba53b70dd");
        for bad in [
            "nounderscore",
            "a_b",
            "ns_pod_",
            "_pod_uid",
            "ns_../x_uid",
            "ns_p=q_uid",
            "ns_a_b_uid",
        ] {
            assert_eq!(PodDir::parse(bad), None, "{bad}");
        }
    }

    fn g(job: &str, cronjob: Option<&str>, index: Option<u32>) -> JobGuess {
        JobGuess {
            job: job.into(),
            cronjob: cronjob.map(Into::into),
            completion_index: index,
        }
    }

    #[test]
    fn job_names_are_guessed_from_pod_names() {
        assert_eq!(
            guess_job("exit-nonzero-szsld"),
            g("exit-nonzero", None, None)
        );
        assert_eq!(guess_job("indexed-1-bbstw"), g("indexed", None, Some(1)));
        assert_eq!(
            guess_job("cron-fail-29929854-64rlg"),
            g("cron-fail-29929854", Some("cron-fail"), None)
        );
        assert_eq!(
            guess_job("cron-fail-29929854-3-64rlg"),
            g("cron-fail-29929854", Some("cron-fail"), Some(3))
        );
        // A job whose own name ends in a number that is no schedule time keeps it as an index;
        // a name with no generated suffix is kept whole.
        assert_eq!(guess_job("backup-2-x7z9q"), g("backup", None, Some(2)));
        assert_eq!(guess_job("standalone"), g("standalone", None, None));
        assert_eq!(guess_job("web-vowel"), g("web-vowel", None, None));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any folder name: no panic, and what parses is safe to put in a key.
            #[test]
            fn any_folder_name_parses_safely_or_not_at_all(name in "\\PC{0,80}") {
                if let Some(d) = PodDir::parse(&name) {
                    for part in [&d.namespace, &d.pod, &d.uid] {
                        prop_assert!(is_safe_segment(part) && !part.contains('_'));
                    }
                    prop_assert_eq!(format!("{}_{}_{}", d.namespace, d.pod, d.uid), name);
                }
            }

            /// Kubelet-shaped names always parse back into their parts.
            #[test]
            fn kubelet_folder_names_round_trip(
                ns in "[a-z0-9][a-z0-9-]{0,20}",
                pod in "[a-z0-9][a-z0-9.-]{0,40}",
                uid in "[a-f0-9-]{1,36}",
            ) {
                let d = PodDir::parse(&format!("{ns}_{pod}_{uid}")).unwrap();
                prop_assert_eq!((d.namespace, d.pod, d.uid), (ns, pod, uid));
            }

            /// Any pod name: no panic, and the job is a non-empty prefix of the pod name.
            #[test]
            fn job_guesses_are_prefixes_of_the_pod_name(pod in "[a-z0-9-]{1,63}|\\PC{0,63}") {
                let g = guess_job(&pod);
                prop_assert!(pod.starts_with(&g.job));
                prop_assert!(!g.job.is_empty() || pod.is_empty());
                if let Some(cron) = &g.cronjob {
                    prop_assert!(g.job.starts_with(cron.as_str()));
                }
            }
        }
    }
}
