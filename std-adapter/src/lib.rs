//! tidings: embeddable in-process publish/subscribe with Redis semantics.
#![forbid(unsafe_code)]

mod broker;
mod message;
mod policy;
mod subscriber;

pub use broker::{Broker, BrokerBuilder, Metrics};
pub use crossbeam_channel;
pub use message::{
    DisconnectReason, Message, MessageKind, RecvError, RecvTimeoutError, TryRecvError,
};
pub use policy::{ConfigError, Envelope, Options, Policy, SubscriberStats};
pub use subscriber::{Confirmation, Iter, Subscriber, TryIter};
pub use tidings_core as core;
pub use tidings_core::{Counts, Kind, glob, keyspace, slot};
