//! Feature `metrics`: the broker's and the bridge's counters and gauges,
//! reported through the [`metrics`](https://docs.rs/metrics) facade to
//! whatever recorder the application installed.
//!
//! The names, labels and meanings are documented in the crate docs ("Crate
//! features"); this module is how they are kept, at the least cost:
//!
//! - **Handles are registered once per broker** (and once per bridge), when
//!   it is built: one call into the recorder per series. Afterwards an
//!   update is a call on a handle (for most recorders, one atomic add), with
//!   no lookup by name. The catch is the facade's: a broker built before
//!   the recorder is installed holds no-op handles for good.
//! - **One update per counter per publish**, not per delivery: a publish
//!   collects its deliveries, drops (by policy) and lags as plain integers
//!   in its `Outcome` (`crate::route`), and reports each that moved once,
//!   after every broker lock is released.
//! - **A recorder is user code**, so it never runs under a broker lock.
//!   Counters are reported where the publish already runs lock-free.
//!   The gauges of names held (channels, patterns, shard channels) change
//!   under the registry's write lock, where the registry reports a name
//!   gaining its first or losing its last subscriber: there, only a pending
//!   delta is added to an atomic; the thread then applies every pending
//!   delta to the gauges once it has released the lock (`Interest::dispatch`
//!   runs after every registry change). Deltas commute, so whichever thread
//!   applies one, and in whatever order, the gauge ends at the registry's
//!   count.
//! - **Gauges move by increments, never by `set`**, so several brokers
//!   reporting under the same labels add up (the process's total), and two
//!   threads applying their changes in either order cannot leave a stale
//!   value behind.
//!
//! Without the feature, the same types exist with no fields and empty
//! inline methods: the hooks in the publish path compile to nothing.

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

/// The metric names, as the crate docs list them.
#[cfg(feature = "metrics")]
pub(crate) mod names {
    pub(crate) const PUBLISHES: &str = "tidings_publishes_total";
    pub(crate) const DELIVERIES: &str = "tidings_deliveries_total";
    pub(crate) const DROPPED: &str = "tidings_dropped_total";
    pub(crate) const LAGGED: &str = "tidings_lagged_total";
    pub(crate) const DISCONNECTED: &str = "tidings_disconnected_total";
    pub(crate) const SUBSCRIBERS: &str = "tidings_subscribers";
    pub(crate) const CHANNELS: &str = "tidings_channels";
    pub(crate) const PATTERNS: &str = "tidings_patterns";
    pub(crate) const SHARD_CHANNELS: &str = "tidings_shard_channels";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_CONNECTED: &str = "tidings_bridge_connected";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_RECONNECTS: &str = "tidings_bridge_reconnects_total";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_DISCONNECTS: &str = "tidings_bridge_disconnects_total";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_MESSAGES_IN: &str = "tidings_bridge_messages_in_total";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_MESSAGES_OUT: &str = "tidings_bridge_messages_out_total";
    #[cfg(feature = "redis")]
    pub(crate) const BRIDGE_LOST: &str = "tidings_bridge_lost_total";
}

#[cfg(feature = "metrics")]
mod on {
    use std::sync::atomic::{AtomicI64, Ordering};

    use metrics::{Counter, Gauge, Label, Unit};
    use tidings_core::Namespace;

    use super::names::*;
    use crate::policy::Policy;

    /// The `policy` label's values, in [`policy_index`] order.
    const POLICIES: [&str; 4] = ["drop_newest", "drop_oldest", "block", "disconnect"];

    /// Where a policy's counts go in a `[_; 4]`.
    #[inline]
    fn policy_index(policy: Policy) -> usize {
        match policy {
            Policy::DropNewest => 0,
            Policy::DropOldest => 1,
            Policy::Block { .. } => 2,
            Policy::Disconnect => 3,
        }
    }

    /// The labels of one series: `broker="…"` if the broker has a metrics
    /// label, then `extra`.
    fn labels(broker: Option<&'static str>, extra: &[(&'static str, &'static str)]) -> Vec<Label> {
        broker
            .map(|b| Label::from_static_parts("broker", b))
            .into_iter()
            .chain(extra.iter().map(|(k, v)| Label::from_static_parts(k, v)))
            .collect()
    }

    fn counter(
        name: &'static str,
        broker: Option<&'static str>,
        extra: &[(&'static str, &'static str)],
    ) -> Counter {
        metrics::counter!(name, labels(broker, extra))
    }

    fn gauge(name: &'static str, broker: Option<&'static str>) -> Gauge {
        metrics::gauge!(name, labels(broker, &[]))
    }

    /// Drops of one publish, by the policy of the subscriber that dropped.
    #[derive(Default)]
    pub(crate) struct DroppedBy([u64; 4]);

    impl DroppedBy {
        /// One message dropped for a subscriber with `policy`.
        #[inline]
        pub(crate) fn add(&mut self, policy: Policy) {
            self.0[policy_index(policy)] += 1;
        }
    }

    /// A broker's handles.
    pub(crate) struct BrokerTelemetry {
        label: Option<&'static str>,
        publishes: Counter,
        deliveries: Counter,
        /// By [`policy_index`].
        dropped: [Counter; 4],
        /// Lag exists only under `DropOldest`.
        lagged: Counter,
        /// Disconnection exists only under `Disconnect`.
        disconnected: Counter,
        subscribers: Gauge,
    }

    impl BrokerTelemetry {
        /// Describes the metrics to the recorder and registers this
        /// broker's handles.
        pub(crate) fn new(label: Option<&'static str>) -> BrokerTelemetry {
            describe();
            BrokerTelemetry {
                label,
                publishes: counter(PUBLISHES, label, &[]),
                deliveries: counter(DELIVERIES, label, &[]),
                dropped: POLICIES.map(|p| counter(DROPPED, label, &[("policy", p)])),
                lagged: counter(LAGGED, label, &[("policy", POLICIES[1])]),
                disconnected: counter(DISCONNECTED, label, &[("policy", POLICIES[3])]),
                subscribers: gauge(SUBSCRIBERS, label),
            }
        }

        /// The broker's `broker` label, for its bridge.
        #[cfg_attr(not(feature = "redis"), allow(dead_code))]
        pub(crate) fn label(&self) -> Option<&'static str> {
            self.label
        }

        /// A `publish` or `spublish` call (no lock held).
        #[inline]
        pub(crate) fn published(&self) {
            self.publishes.increment(1);
        }

        /// What one publish delivered, dropped and lagged, once it has
        /// released every lock.
        #[inline]
        pub(crate) fn outcome(&self, delivered: u64, dropped: u64, by: &DroppedBy, lagged: u64) {
            if delivered > 0 {
                self.deliveries.increment(delivered);
            }
            if dropped > 0 {
                for (counter, &n) in self.dropped.iter().zip(&by.0) {
                    if n > 0 {
                        counter.increment(n);
                    }
                }
            }
            if lagged > 0 {
                self.lagged.increment(lagged);
            }
        }

        /// Subscribers removed by `Disconnect` (after the registry's lock
        /// is released).
        #[inline]
        pub(crate) fn disconnected(&self, n: usize) {
            if n > 0 {
                self.disconnected.increment(n as u64);
            }
        }

        /// A subscriber or handler handle was created (`1`) or dropped
        /// (`-1`), with no lock held.
        #[inline]
        pub(crate) fn subscribers(&self, delta: i8) {
            if delta > 0 {
                self.subscribers.increment(f64::from(delta));
            } else {
                self.subscribers.decrement(-f64::from(delta));
            }
        }

        /// The gauges of names held, for the broker's interest record.
        pub(crate) fn names(&self) -> NameGauges {
            NameGauges {
                pending: Default::default(),
                gauges: [CHANNELS, PATTERNS, SHARD_CHANNELS].map(|n| gauge(n, self.label)),
            }
        }
    }

    // The recorder's handles are `dyn` objects with no unwind-safety bound.
    // tidings only ever calls them, after its own state is updated and with
    // no lock held, so a panic inside a recorder cannot leave broker state
    // half changed; what it does to its own state is the recorder's
    // business (as for a handler's function, `crate::queue::HandlerFn`). So
    // the broker's handles stay `UnwindSafe` with the feature on, as they
    // are without it: features only add.
    impl std::panic::RefUnwindSafe for BrokerTelemetry {}
    impl std::panic::UnwindSafe for BrokerTelemetry {}
    impl std::panic::RefUnwindSafe for NameGauges {}
    impl std::panic::UnwindSafe for NameGauges {}
    #[cfg(feature = "redis")]
    impl std::panic::RefUnwindSafe for BridgeTelemetry {}
    #[cfg(feature = "redis")]
    impl std::panic::UnwindSafe for BridgeTelemetry {}

    /// The gauges of channels, patterns and shard channels held, and the
    /// changes recorded under the registry's lock but not yet applied.
    pub(crate) struct NameGauges {
        /// By namespace: names gained minus names lost, not yet applied.
        pending: [AtomicI64; 3],
        gauges: [Gauge; 3],
    }

    #[inline]
    fn namespace_index(namespace: Namespace) -> usize {
        match namespace {
            Namespace::Channel => 0,
            Namespace::Pattern => 1,
            Namespace::Shard => 2,
        }
    }

    impl NameGauges {
        /// A name gained its first subscriber (`active`) or lost its last;
        /// called under the registry's write lock: no recorder code runs.
        #[inline]
        pub(crate) fn record(&self, namespace: Namespace, active: bool) {
            let delta = if active { 1 } else { -1 };
            self.pending[namespace_index(namespace)].fetch_add(delta, Ordering::Relaxed);
        }

        /// The broker closed: the names of its old registry are gone.
        /// Called with no lock held; applies them at once.
        pub(crate) fn closed(&self, namespaces: impl Iterator<Item = Namespace>) {
            for namespace in namespaces {
                self.record(namespace, false);
            }
            self.flush();
        }

        /// Applies every pending change to the gauges; called with no broker
        /// lock held. Each change is taken out of `pending` by exactly one
        /// thread, so each is applied once.
        #[inline]
        pub(crate) fn flush(&self) {
            for (pending, gauge) in self.pending.iter().zip(&self.gauges) {
                if pending.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                let delta = pending.swap(0, Ordering::Relaxed);
                if delta > 0 {
                    gauge.increment(delta as f64);
                } else if delta < 0 {
                    gauge.decrement(-(delta as f64));
                }
            }
        }
    }

    /// Tells the recorder what each metric means (its `# HELP` line in
    /// Prometheus). Recorders keep one description per name, so describing
    /// again for each broker changes nothing.
    fn describe() {
        use metrics::{describe_counter, describe_gauge};
        describe_counter!(PUBLISHES, Unit::Count, "publish and spublish calls");
        describe_counter!(
            DELIVERIES,
            Unit::Count,
            "messages delivered: queued for a subscriber, written to a ring it reads, or handed to a handler"
        );
        describe_counter!(
            DROPPED,
            Unit::Count,
            "new messages discarded, by the policy of the subscriber that discarded them"
        );
        describe_counter!(
            LAGGED,
            Unit::Count,
            "delivered messages discarded by drop_oldest before the subscriber took them"
        );
        describe_counter!(
            DISCONNECTED,
            Unit::Count,
            "subscribers removed by the disconnect policy"
        );
        describe_gauge!(
            SUBSCRIBERS,
            Unit::Count,
            "live subscriber and handler handles"
        );
        describe_gauge!(
            CHANNELS,
            Unit::Count,
            "channels with at least one subscriber"
        );
        describe_gauge!(
            PATTERNS,
            Unit::Count,
            "patterns with at least one subscriber"
        );
        describe_gauge!(
            SHARD_CHANNELS,
            Unit::Count,
            "shard channels with at least one subscriber"
        );
    }

    /// A bridge's handles.
    #[cfg(feature = "redis")]
    pub(crate) struct BridgeTelemetry {
        /// Whether the gauge counts this bridge as connected now.
        up: std::sync::atomic::AtomicBool,
        connected: Gauge,
        reconnects: Counter,
        disconnects: Counter,
        messages_in: Counter,
        messages_out: Counter,
        lost: Counter,
    }

    #[cfg(feature = "redis")]
    impl BridgeTelemetry {
        /// Registers a bridge's handles, with its broker's label.
        pub(crate) fn new(broker: &BrokerTelemetry) -> BridgeTelemetry {
            use metrics::{describe_counter, describe_gauge};
            describe_gauge!(
                BRIDGE_CONNECTED,
                Unit::Count,
                "1 while every connection of the bridge to every redis node is up (summed over bridges sharing labels)"
            );
            describe_counter!(
                BRIDGE_RECONNECTS,
                Unit::Count,
                "redis connections re-established after a loss"
            );
            describe_counter!(
                BRIDGE_DISCONNECTS,
                Unit::Count,
                "redis connection losses: broken sockets, unanswered heartbeats, error replies"
            );
            describe_counter!(
                BRIDGE_MESSAGES_IN,
                Unit::Count,
                "message, pmessage and smessage pushes received from redis"
            );
            describe_counter!(
                BRIDGE_MESSAGES_OUT,
                Unit::Count,
                "bridge publishes redis accepted"
            );
            describe_counter!(
                BRIDGE_LOST,
                Unit::Count,
                "bridge publishes that failed: node down, refused, or not answered in time"
            );
            let label = broker.label();
            BridgeTelemetry {
                up: std::sync::atomic::AtomicBool::new(false),
                connected: gauge(BRIDGE_CONNECTED, label),
                reconnects: counter(BRIDGE_RECONNECTS, label, &[]),
                disconnects: counter(BRIDGE_DISCONNECTS, label, &[]),
                messages_in: counter(BRIDGE_MESSAGES_IN, label, &[]),
                messages_out: counter(BRIDGE_MESSAGES_OUT, label, &[]),
                lost: counter(BRIDGE_LOST, label, &[]),
            }
        }

        /// The bridge is (or is no longer) connected everywhere: moves the
        /// gauge by one if that changed.
        pub(crate) fn connected(&self, up: bool) {
            if self.up.swap(up, Ordering::Relaxed) != up {
                if up {
                    self.connected.increment(1.0);
                } else {
                    self.connected.decrement(1.0);
                }
            }
        }

        /// A node's connections were re-established after a loss.
        pub(crate) fn reconnected(&self) {
            self.reconnects.increment(1);
        }

        /// A node's connection was lost.
        pub(crate) fn disconnected(&self) {
            self.disconnects.increment(1);
        }

        /// A message arrived from Redis (after the reader released its
        /// gate).
        #[inline]
        pub(crate) fn message_in(&self) {
            self.messages_in.increment(1);
        }

        /// A bridge publish was accepted (`true`) or failed.
        #[inline]
        pub(crate) fn published(&self, accepted: bool) {
            if accepted {
                self.messages_out.increment(1);
            } else {
                self.lost.increment(1);
            }
        }
    }
}

/// The same hooks with the feature off: no fields, no code.
#[cfg(not(feature = "metrics"))]
mod off {
    use tidings_core::Namespace;

    use crate::policy::Policy;

    /// Braced, so that `DroppedBy::default()` reads the same in both
    /// configurations.
    #[derive(Default)]
    pub(crate) struct DroppedBy {}

    impl DroppedBy {
        #[inline(always)]
        pub(crate) fn add(&mut self, _: Policy) {}
    }

    pub(crate) struct BrokerTelemetry;

    impl BrokerTelemetry {
        #[inline(always)]
        pub(crate) fn new(_: Option<&'static str>) -> BrokerTelemetry {
            BrokerTelemetry
        }

        #[inline(always)]
        pub(crate) fn published(&self) {}

        #[inline(always)]
        pub(crate) fn outcome(&self, _: u64, _: u64, _: &DroppedBy, _: u64) {}

        #[inline(always)]
        pub(crate) fn disconnected(&self, _: usize) {}

        #[inline(always)]
        pub(crate) fn subscribers(&self, _: i8) {}

        #[inline(always)]
        pub(crate) fn names(&self) -> NameGauges {
            NameGauges
        }
    }

    pub(crate) struct NameGauges;

    impl NameGauges {
        #[inline(always)]
        pub(crate) fn record(&self, _: Namespace, _: bool) {}

        #[inline(always)]
        pub(crate) fn closed(&self, _: impl Iterator<Item = Namespace>) {}

        #[inline(always)]
        pub(crate) fn flush(&self) {}
    }

    #[cfg(feature = "redis")]
    pub(crate) struct BridgeTelemetry;

    #[cfg(feature = "redis")]
    impl BridgeTelemetry {
        #[inline(always)]
        pub(crate) fn new(_: &BrokerTelemetry) -> BridgeTelemetry {
            BridgeTelemetry
        }

        #[inline(always)]
        pub(crate) fn connected(&self, _: bool) {}

        #[inline(always)]
        pub(crate) fn reconnected(&self) {}

        #[inline(always)]
        pub(crate) fn disconnected(&self) {}

        #[inline(always)]
        pub(crate) fn message_in(&self) {}

        #[inline(always)]
        pub(crate) fn published(&self, _: bool) {}
    }
}
