//! jobarchive: archives the logs and resource footprints of Kubernetes Job pods.
//!
//! The data path, one module per stage: `follow` (the file-following core: `discover` the
//! streams, `plan` where each starts, `tail` its files; `parse`, `encode` and `batch` turn lines
//! into batches) → `watch` (the follower thread that drives it, with `meta` for who a pod is) →
//! `commit` (`compress` → `store` → manifest parts and head → `checkpoint`; its `spool` while the
//! store is down). `pipeline` wires them; `footprint::recorder` runs beside them, with
//! `postmortem` (Events and Job records); `read` (with `inflate` and `decode`), `verify` and `cli`
//! are the reading side. `contract` holds everything the external contract defines, once
//! (docs/contract.md, "CONTRACT §n" in comments).
//!
//! ## Layers
//!
//! A module imports only from its own layer and the layers below it, and never in a cycle. The
//! `layers` test reads this table and every `use crate::…` of agent/src, and fails on an import
//! that points up or closes a cycle; docs/architecture.md draws the same layers with each
//! module's job and imports, and the test holds it to them.
//!
//! ```text
//! 8 commands    cli
//! 7 wiring      pipeline error
//! 6 tasks       watch footprint::recorder meta::kube
//! 5 stages      commit postmortem read verify http progress
//! 4 state       checkpoint
//! 3 io          follow store
//! 2 model       config meta encode batch decode footprint
//! 1 formats     contract parse compress inflate
//! 0 base        clock metrics stop durable retry
//! ```

pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod commit;
pub mod compress;
pub mod config;
pub mod contract;
pub mod decode;
pub mod durable;
pub mod encode;
pub mod error;
pub mod follow;
pub mod footprint;
pub mod http;
pub mod inflate;
#[cfg(test)]
mod layers;
pub mod meta;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod postmortem;
pub mod progress;
pub mod read;
pub mod retry;
pub mod stop;
pub mod store;
pub mod verify;
pub mod watch;
