//! Subscribers without a queue: see [`Broker::handler`](crate::Broker::handler).

use std::fmt;

use tidings_core::{Confirmation, Counts, Namespace};

use crate::subscriber::{Subscriber, subscription_methods};

/// A subscriber whose messages are handed to a function on the delivering
/// thread, made by [`Broker::handler`](crate::Broker::handler). It
/// subscribes like a [`Subscriber`], with the same confirmations, and
/// dropping it unsubscribes it from everything.
pub struct Handler<T> {
    /// The registry membership; it never queues anything.
    member: Subscriber<T>,
}

impl<T> Handler<T> {
    pub(crate) fn new(member: Subscriber<T>) -> Self {
        Handler { member }
    }

    fn op(&mut self, namespace: Namespace, name: &[u8], subscribe: bool) -> Confirmation {
        self.member.op(namespace, name, subscribe)
    }

    fn op_all(&mut self, namespace: Namespace) -> Vec<Confirmation> {
        self.member.op_all(namespace)
    }

    fn member_counts(&self) -> Counts {
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
