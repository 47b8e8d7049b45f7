//! Subscribers without a queue: see [`Broker::handler`](crate::Broker::handler).

use std::fmt;

use tidings_core::Kind;

use crate::subscriber::{Confirmation, Subscriber, subscription_methods};

/// A subscriber whose messages are handed to a function on the delivering
/// thread, made by [`Broker::handler`](crate::Broker::handler). It
/// subscribes like a [`Subscriber`], with the same confirmations, and
/// dropping it unsubscribes it from everything.
pub struct Handler<T> {
    /// The registry membership; its queue is never used.
    member: Subscriber<T>,
}

impl<T> Handler<T> {
    pub(crate) fn new(member: Subscriber<T>) -> Self {
        Handler { member }
    }

    fn op(&mut self, kind: Kind, name: &[u8]) -> Confirmation {
        self.member.op(kind, name)
    }

    fn op_all(&mut self, kind: Kind) -> Vec<Confirmation> {
        self.member.op_all(kind)
    }

    fn member_counts(&self) -> tidings_core::Counts {
        self.member.member_counts()
    }

    subscription_methods!();
}

impl<T> fmt::Debug for Handler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}
