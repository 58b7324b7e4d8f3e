//! Kubernetes API trouble, sorted into the few kinds an operator acts on, and reported once per
//! change of kind rather than on every retry (a down API server would otherwise flood the log).

use std::sync::Mutex;

/// What went wrong, at the level an operator fixes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 401: the token is wrong or expired.
    Unauthorized,
    /// 403: RBAC does not grant what the agent asks.
    Forbidden,
    /// Connection refused or cut, 5xx, 429, timeouts: it comes back by itself.
    Unreachable,
    /// Any other refusal (4xx): retrying the same request will not help.
    Rejected,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Unauthorized => "unauthorized (401): check the service account token",
            Class::Forbidden => {
                "forbidden (403): the ClusterRole must allow get/list/watch pods, get jobs and list events"
            }
            Class::Unreachable => "unreachable",
            Class::Rejected => "rejected a request",
        }
    }

    fn of_code(code: u16) -> Class {
        match code {
            401 => Class::Unauthorized,
            403 => Class::Forbidden,
            408 | 429 | 500..=599 => Class::Unreachable,
            _ => Class::Rejected,
        }
    }
}

#[derive(Debug)]
pub struct RequestError {
    pub class: Class,
    pub detail: String,
}

impl RequestError {
    pub fn from_kube(e: &kube::Error) -> RequestError {
        match e {
            kube::Error::Api(status) => Self::from_status(status),
            // The token file could not be read or refreshed.
            kube::Error::Auth(_) => RequestError {
                class: Class::Unauthorized,
                detail: one_line(&e.to_string()),
            },
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => RequestError {
                class: Class::Rejected,
                detail: one_line(&e.to_string()),
            },
            _ => RequestError {
                class: Class::Unreachable,
                detail: one_line(&e.to_string()),
            },
        }
    }

    fn from_status(status: &kube::core::Status) -> RequestError {
        RequestError {
            class: Class::of_code(status.code),
            detail: one_line(&format!(
                "{} {}: {}",
                status.code, status.reason, status.message
            )),
        }
    }

    pub fn from_watch(e: &kube::runtime::watcher::Error) -> RequestError {
        use kube::runtime::watcher::Error as W;
        match e {
            W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
                Self::from_kube(e)
            }
            W::WatchError(status) => Self::from_status(status),
            W::NoResourceVersion => RequestError {
                class: Class::Rejected,
                detail: one_line(&e.to_string()),
            },
        }
    }

    pub fn timeout(secs: u64) -> RequestError {
        RequestError {
            class: Class::Unreachable,
            detail: format!("no answer within {secs} s"),
        }
    }

    /// A refusal stays until someone changes the cluster: the caller stops waiting for this
    /// answer and makes do with what it has.
    pub fn permanent(&self) -> bool {
        self.class != Class::Unreachable
    }
}

/// An expired watch (410 Gone) is routine: the watcher relists, nothing is wrong.
pub fn is_expired_watch(e: &kube::runtime::watcher::Error) -> bool {
    matches!(e, kube::runtime::watcher::Error::WatchError(s) if s.code == 410)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unknown,
    Ok,
    Failing(Class),
}

/// The health of one kind of API use (the pod watch, the on-demand lookups).
pub struct Health {
    what: &'static str,
    state: Mutex<State>,
}

impl Health {
    pub fn new(what: &'static str) -> Health {
        Health {
            what,
            state: Mutex::new(State::Unknown),
        }
    }

    pub fn ok(&self) {
        if let State::Failing(_) = self.swap(State::Ok) {
            tracing::info!(api_use = self.what, "Kubernetes API answering again");
        }
    }

    pub fn failed(&self, e: &RequestError) {
        if self.swap(State::Failing(e.class)) != State::Failing(e.class) {
            tracing::warn!(
                api_use = self.what,
                error = %e.detail,
                "Kubernetes API {}; retrying with backoff (tailing goes on; new pods wait for their metadata)",
                e.class.describe()
            );
        }
    }

    pub fn failing(&self) -> bool {
        matches!(self.current(), State::Failing(_))
    }

    fn current(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn swap(&self, new: State) -> State {
        std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            new,
        )
    }
}
