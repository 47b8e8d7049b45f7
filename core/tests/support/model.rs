//! A naive model of `tidings_core::registry::Registry` for differential tests
//! and fuzzing, and [`check_op`], which runs one operation on both and
//! asserts that they agree.
//!
//! The model is as plain as the rules of REDIS-SEMANTICS.md §2 and §3 allow:
//! every (subscriber, name) pair sits in one `Vec` per namespace, in
//! subscription order; live patterns are kept in a second `Vec` in the order
//! they were created (first subscriber); every query is a linear scan, and
//! globs are matched with the reference transliteration of Redis's
//! `stringmatchlen`. It shares no code with the registry, only its types.
//!
//! Besides Redis's answers it predicts what the registry reports as data:
//! the exact sequence of [`Change`]s of every operation (which pair joined or
//! left, whether that created or freed the route, and the route value lent
//! with it), the routes of a publish in order, and when
//! [`Registry::patterns_version`] must change. The registries under test
//! keep a [`Tag`] per route: a serial number taken when the route is built,
//! so that the model can tell one lifetime of a route from the next and
//! check that a value is built once per lifetime and lent unchanged.
//!
//! It needs the reference matcher as a sibling module:
//!
//! ```text
//! mod support { pub mod reference_glob; pub mod model; }          // a test
//! #[path = "../../core/tests/support/reference_glob.rs"]          // a fuzz
//! mod reference_glob;                                             // target
//! #[path = "../../core/tests/support/model.rs"]
//! mod model;
//! ```

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use tidings_core::registry::{Change, Confirmation, Counts, Namespace, PatternId, Registry, Route};

use super::reference_glob::reference_matches;

thread_local! {
    /// Route values built on this thread so far.
    static BUILT: Cell<u64> = const { Cell::new(0) };
}

/// The route value of the registries under test: what it was built for, and
/// a serial number unique on this thread, one more than [`built`] was before.
#[derive(Debug)]
pub struct Tag {
    /// The namespace `with_routes`'s function was given.
    pub namespace: Namespace,
    /// The name it was given (the registry's shared copy).
    pub name: Arc<[u8]>,
    /// Which build this was on this thread, from 1.
    pub serial: u64,
}

impl Tag {
    /// What the model compares: (namespace, name, serial).
    pub fn view(&self) -> TagView {
        (self.namespace, self.name.to_vec(), self.serial)
    }
}

/// A [`Tag`] as the model predicts it: (namespace, name, serial).
pub type TagView = (Namespace, Vec<u8>, u64);

/// The number of [`Tag`]s built on this thread so far: the next one built
/// gets serial `built() + 1`.
pub fn built() -> u64 {
    BUILT.with(Cell::get)
}

fn build_tag(namespace: Namespace, name: &Arc<[u8]>) -> Tag {
    let serial = BUILT.with(|b| {
        b.set(b.get() + 1);
        b.get()
    });
    Tag {
        namespace,
        name: Arc::clone(name),
        serial,
    }
}

/// An empty registry whose routes are [`Tag`]s.
pub fn registry<S: Copy + Eq + Hash>() -> Registry<S, Tag> {
    Registry::with_routes(build_tag)
}

/// The command Redis names in a confirmation, written out independently of
/// the registry's own table.
pub fn command(namespace: Namespace, subscribe: bool) -> &'static str {
    match (namespace, subscribe) {
        (Namespace::Channel, true) => "subscribe",
        (Namespace::Channel, false) => "unsubscribe",
        (Namespace::Pattern, true) => "psubscribe",
        (Namespace::Pattern, false) => "punsubscribe",
        (Namespace::Shard, true) => "ssubscribe",
        (Namespace::Shard, false) => "sunsubscribe",
    }
}

/// An owned [`Confirmation`], comparable across the registry and the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// The namespace acted in.
    pub namespace: Namespace,
    /// A subscribe (`true`) or an unsubscribe.
    pub subscribe: bool,
    /// The channel or pattern; `None` for an "unsubscribe all" of nothing.
    pub name: Option<Vec<u8>>,
    /// The count Redis reports.
    pub count: usize,
    /// [`Confirmation::command`].
    pub command: &'static str,
}

impl Confirm {
    /// The confirmation the rules predict, with its command from [`command`].
    pub fn new(namespace: Namespace, subscribe: bool, name: Option<&[u8]>, count: usize) -> Self {
        Confirm {
            namespace,
            subscribe,
            name: name.map(<[u8]>::to_vec),
            count,
            command: command(namespace, subscribe),
        }
    }
}

impl From<Confirmation> for Confirm {
    fn from(c: Confirmation) -> Self {
        Confirm {
            namespace: c.namespace,
            subscribe: c.subscribe,
            command: c.command(),
            name: c.name.map(|n| n.to_vec()),
            count: c.count,
        }
    }
}

/// An owned [`Change`] of a registry whose routes are [`Tag`]s.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    /// The namespace of the name.
    pub namespace: Namespace,
    /// The name.
    pub name: Vec<u8>,
    /// Joined (`true`) or left.
    pub joined: bool,
    /// This join created the route, or this departure frees it.
    pub first_or_last: bool,
    /// The route value lent with the change.
    pub route: TagView,
}

impl From<Change<'_, Tag>> for Event {
    fn from(c: Change<'_, Tag>) -> Self {
        Event {
            namespace: c.namespace,
            name: c.name.to_vec(),
            joined: c.joined,
            first_or_last: c.first_or_last,
            route: c.route.view(),
        }
    }
}

/// An owned [`Route`] of a registry whose routes are [`Tag`]s.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteView<S> {
    /// [`Route::namespace`].
    pub namespace: Namespace,
    /// [`Route::name`].
    pub name: Vec<u8>,
    /// The source bytes of [`Route::pattern`].
    pub pattern: Option<Vec<u8>>,
    /// [`Route::subscribers`], in order.
    pub subscribers: Vec<S>,
    /// [`Route::len`].
    pub len: usize,
    /// [`Route::value`].
    pub value: TagView,
}

impl<S: Copy + Eq> RouteView<S> {
    /// Reads `route`.
    ///
    /// # Panics
    ///
    /// If [`Route::is_empty`] is `true`: a route without subscribers is
    /// freed, never handed out.
    pub fn of(route: Route<'_, S, Tag>) -> Self {
        assert!(!route.is_empty(), "a route is never empty: {route:?}");
        RouteView {
            namespace: route.namespace(),
            name: route.name().to_vec(),
            pattern: route.pattern().map(|p| p.as_bytes().to_vec()),
            subscribers: route.subscribers().iter().copied().collect(),
            len: route.len(),
            value: route.value().view(),
        }
    }
}

/// One delivery of a publish: the subscriber and, for a pattern
/// subscription, the pattern's bytes.
pub type Delivery<S> = (S, Option<Vec<u8>>);

fn slot(namespace: Namespace) -> usize {
    match namespace {
        Namespace::Channel => 0,
        Namespace::Pattern => 1,
        Namespace::Shard => 2,
    }
}

/// The naive registry, and what [`check_op`] remembers of the registry
/// under test between operations.
#[derive(Clone, Debug)]
pub struct Model<S> {
    /// (subscriber, name) pairs per namespace (by [`slot`]), in subscription
    /// order.
    pairs: [Vec<(S, Vec<u8>)>; 3],
    /// Live patterns, in the order they gained their first subscriber.
    pattern_order: Vec<Vec<u8>>,
    /// The serial of the [`Tag`] of every live route.
    serials: BTreeMap<(Namespace, Vec<u8>), u64>,
    /// Pattern ids seen in publishes: (pattern, serial of its route, id).
    /// An id names its pattern for as long as that route lives.
    pattern_ids: Vec<(Vec<u8>, u64, PatternId)>,
    /// The registry's `patterns_version` after the last operation.
    version: Option<u64>,
    /// Versions the registry has left behind; it must never return to one.
    old_versions: BTreeSet<u64>,
}

impl<S> Default for Model<S> {
    fn default() -> Self {
        Model {
            pairs: [Vec::new(), Vec::new(), Vec::new()],
            pattern_order: Vec::new(),
            serials: BTreeMap::new(),
            pattern_ids: Vec::new(),
            version: None,
            old_versions: BTreeSet::new(),
        }
    }
}

impl<S: Copy + Eq + Ord + Debug> Model<S> {
    fn pairs(&self, namespace: Namespace) -> &Vec<(S, Vec<u8>)> {
        &self.pairs[slot(namespace)]
    }

    fn holds(&self, namespace: Namespace, s: S, name: &[u8]) -> bool {
        self.pairs(namespace)
            .iter()
            .any(|(x, n)| *x == s && n == name)
    }

    fn held_by_anyone(&self, namespace: Namespace, name: &[u8]) -> bool {
        self.pairs(namespace).iter().any(|(_, n)| n == name)
    }

    /// The count a confirmation in `namespace` reports for `s`.
    fn count(&self, namespace: Namespace, s: S) -> usize {
        let counts = self.counts(s);
        match namespace {
            Namespace::Shard => counts.shard_channels,
            Namespace::Channel | Namespace::Pattern => counts.subscriptions(),
        }
    }

    /// The value of the live route of `name`.
    fn tag(&self, namespace: Namespace, name: &[u8]) -> TagView {
        let serial = self.serials[&(namespace, name.to_vec())];
        (namespace, name.to_vec(), serial)
    }

    /// Drops the pair if held, and returns the change that reports it.
    fn detach(&mut self, namespace: Namespace, s: S, name: &[u8]) -> Option<Event> {
        let pairs = &mut self.pairs[slot(namespace)];
        let at = pairs.iter().position(|(x, n)| *x == s && n == name)?;
        pairs.remove(at);
        let route = self.tag(namespace, name);
        let last = !self.held_by_anyone(namespace, name);
        if last {
            self.serials.remove(&(namespace, name.to_vec()));
            if namespace == Namespace::Pattern {
                self.pattern_order.retain(|p| p != name);
            }
        }
        Some(Event {
            namespace,
            name: name.to_vec(),
            joined: false,
            first_or_last: last,
            route,
        })
    }

    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` of one name, with its
    /// changes; a route created now gets the serial `next_serial`.
    pub fn subscribe(
        &mut self,
        namespace: Namespace,
        s: S,
        name: &[u8],
        next_serial: u64,
    ) -> (Confirm, Vec<Event>) {
        let mut events = Vec::new();
        if !self.holds(namespace, s, name) {
            let first = !self.held_by_anyone(namespace, name);
            if first {
                self.serials.insert((namespace, name.to_vec()), next_serial);
                if namespace == Namespace::Pattern {
                    self.pattern_order.push(name.to_vec());
                }
            }
            self.pairs[slot(namespace)].push((s, name.to_vec()));
            events.push(Event {
                namespace,
                name: name.to_vec(),
                joined: true,
                first_or_last: first,
                route: self.tag(namespace, name),
            });
        }
        let confirm = Confirm::new(namespace, true, Some(name), self.count(namespace, s));
        (confirm, events)
    }

    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` of one name, with its
    /// changes.
    pub fn unsubscribe(
        &mut self,
        namespace: Namespace,
        s: S,
        name: &[u8],
    ) -> (Confirm, Vec<Event>) {
        let events: Vec<Event> = self.detach(namespace, s, name).into_iter().collect();
        let confirm = Confirm::new(namespace, false, Some(name), self.count(namespace, s));
        (confirm, events)
    }

    /// The no-argument forms: every held name in byte order, counts falling,
    /// or one nameless confirmation; the changes in the same order.
    pub fn unsubscribe_all(&mut self, namespace: Namespace, s: S) -> (Vec<Confirm>, Vec<Event>) {
        let mut names: Vec<Vec<u8>> = self
            .pairs(namespace)
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        if names.is_empty() {
            let count = self.count(namespace, s);
            return (
                vec![Confirm::new(namespace, false, None, count)],
                Vec::new(),
            );
        }
        let mut confirms = Vec::new();
        let mut events = Vec::new();
        for name in names {
            events.extend(self.detach(namespace, s, &name));
            let count = self.count(namespace, s);
            confirms.push(Confirm::new(namespace, false, Some(&name), count));
        }
        (confirms, events)
    }

    /// Removes everything `s` holds. Returns what it held and its changes,
    /// sorted: the registry documents no order for them.
    pub fn remove_subscriber(&mut self, s: S) -> (Counts, Vec<Event>) {
        let counts = self.counts(s);
        let mut events = Vec::new();
        for namespace in Namespace::ALL {
            let names: Vec<Vec<u8>> = self
                .pairs(namespace)
                .iter()
                .filter(|(x, _)| *x == s)
                .map(|(_, n)| n.clone())
                .collect();
            for name in names {
                events.extend(self.detach(namespace, s, &name));
            }
        }
        events.sort();
        (counts, events)
    }

    /// The route of `name` in `namespace`, if anyone holds it.
    pub fn route(&self, namespace: Namespace, name: &[u8]) -> Option<RouteView<S>> {
        let subscribers: Vec<S> = self
            .pairs(namespace)
            .iter()
            .filter(|(_, n)| n == name)
            .map(|&(s, _)| s)
            .collect();
        if subscribers.is_empty() {
            return None;
        }
        Some(RouteView {
            namespace,
            name: name.to_vec(),
            pattern: (namespace == Namespace::Pattern).then(|| name.to_vec()),
            len: subscribers.len(),
            subscribers,
            value: self.tag(namespace, name),
        })
    }

    /// The routes of `PUBLISH channel`, in order: the exact channel's, then
    /// every matching pattern's in the order the patterns were created.
    pub fn routes(&self, channel: &[u8]) -> Vec<RouteView<S>> {
        let exact = self.route(Namespace::Channel, channel);
        let patterns = self
            .pattern_order
            .iter()
            .filter(|p| reference_matches(p, channel))
            .filter_map(|p| self.route(Namespace::Pattern, p));
        exact.into_iter().chain(patterns).collect()
    }

    /// Every delivery of `PUBLISH channel`, in order.
    pub fn publish(&self, channel: &[u8]) -> Vec<Delivery<S>> {
        self.routes(channel)
            .into_iter()
            .flat_map(|r| {
                let pattern = r.pattern;
                r.subscribers.into_iter().map(move |s| (s, pattern.clone()))
            })
            .collect()
    }

    /// Every subscriber `SPUBLISH channel` reaches, in order.
    pub fn spublish(&self, channel: &[u8]) -> Vec<S> {
        self.route(Namespace::Shard, channel)
            .map_or_else(Vec::new, |r| r.subscribers)
    }

    /// `PUBSUB NUMSUB` (or `SHARDNUMSUB`; for patterns, the pattern's
    /// subscribers).
    pub fn numsub(&self, namespace: Namespace, name: &[u8]) -> usize {
        self.pairs(namespace)
            .iter()
            .filter(|(_, n)| n == name)
            .count()
    }

    /// `PUBSUB NUMPAT`.
    pub fn numpat(&self) -> usize {
        self.pattern_order.len()
    }

    /// `PUBSUB CHANNELS [glob]` (or `SHARDCHANNELS`, or the patterns held),
    /// sorted.
    pub fn names(&self, namespace: Namespace, glob: Option<&[u8]>) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self
            .pairs(namespace)
            .iter()
            .map(|(_, n)| n.clone())
            .filter(|n| glob.is_none_or(|g| reference_matches(g, n)))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every live route, sorted.
    pub fn all_routes(&self) -> Vec<RouteView<S>> {
        Namespace::ALL
            .into_iter()
            .flat_map(|ns| {
                self.names(ns, None)
                    .into_iter()
                    .filter_map(move |n| self.route(ns, &n))
            })
            .collect()
    }

    /// What `s` holds, by namespace.
    pub fn counts(&self, s: S) -> Counts {
        let n = |ns: Namespace| self.pairs(ns).iter().filter(|(x, _)| *x == s).count();
        Counts {
            channels: n(Namespace::Channel),
            patterns: n(Namespace::Pattern),
            shard_channels: n(Namespace::Shard),
        }
    }

    /// The distinct subscribers holding anything, sorted.
    pub fn subscribers(&self) -> Vec<S> {
        let mut out: Vec<S> = self
            .pairs
            .iter()
            .flat_map(|pairs| pairs.iter().map(|&(s, _)| s))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pairs.iter().all(Vec::is_empty)
    }

    /// Records that the registry gave `id` to the live pattern `view`,
    /// checking that a pattern keeps its id while its route lives.
    fn saw_pattern_id(&mut self, id: PatternId, view: &RouteView<S>) {
        let serial = view.value.2;
        match self
            .pattern_ids
            .iter()
            .find(|(p, s, _)| *p == view.name && *s == serial)
        {
            Some(&(_, _, known)) => assert_eq!(
                id, known,
                "pattern {:?} changed its id while held",
                view.name
            ),
            None => self.pattern_ids.push((view.name.clone(), serial, id)),
        }
    }
}

/// One registry operation, with owned arguments.
#[derive(Clone, Debug)]
pub enum Op<S> {
    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` of one name.
    Subscribe(Namespace, S, Vec<u8>),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` of one name.
    Unsubscribe(Namespace, S, Vec<u8>),
    /// The no-argument unsubscribe of a namespace.
    UnsubscribeAll(Namespace, S),
    /// A disconnect.
    RemoveSubscriber(S),
    /// `PUBLISH channel`, and its routes through `for_each_route`,
    /// `for_each_pattern_route` and `pattern_route`.
    Publish(Vec<u8>),
    /// `SPUBLISH channel`.
    SPublish(Vec<u8>),
    /// `route` and `numsub` (`PUBSUB NUMSUB`, `SHARDNUMSUB`) of one name.
    Route(Namespace, Vec<u8>),
    /// `PUBSUB NUMPAT`.
    NumPat,
    /// `names`: `PUBSUB CHANNELS [glob]`, `SHARDCHANNELS [glob]`, or the
    /// patterns held.
    Names(Namespace, Option<Vec<u8>>),
    /// `Registry::counts`.
    Counts(S),
}

/// Runs `op` on the registry and on the model, asserts that every answer
/// agrees (confirmations, changes, deliveries and routes in order, return
/// values, introspection), then checks, after every operation:
///
/// - the registry's invariants, `numpat`, `subscriber_count`, `is_empty`;
/// - every route (`for_each_name`, `route`, `numsub`): its subscribers in
///   order and its value, built once when the route was created;
/// - that exactly one value was built per route created;
/// - that `patterns_version` changed if and only if a distinct pattern was
///   added or removed, and never returned to an earlier value;
/// - that every pattern id seen in a publish still names its pattern
///   through `pattern_route` while the pattern is held, and that no two
///   held patterns share an id.
///
/// # Panics
///
/// Panics on the first disagreement, naming the operation.
pub fn check_op<S>(registry: &mut Registry<S, Tag>, model: &mut Model<S>, op: &Op<S>)
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    let built_before = built();
    let version_before = model.version.unwrap_or_else(|| registry.patterns_version());
    let patterns_before = model.pattern_order.clone();
    let mut events: Vec<Event> = Vec::new();
    let mut expected_events: Vec<Event> = Vec::new();
    match op {
        Op::Subscribe(ns, s, name) => {
            let got = registry
                .subscribe(*ns, *s, name, |c| events.push(Event::from(c)))
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
            let (confirm, changes) = model.subscribe(*ns, *s, name, built_before + 1);
            expected_events = changes;
            assert_eq!(Confirm::from(got), confirm, "{op:?}");
        }
        Op::Unsubscribe(ns, s, name) => {
            let got = registry.unsubscribe(*ns, *s, name, |c| events.push(Event::from(c)));
            let (confirm, changes) = model.unsubscribe(*ns, *s, name);
            expected_events = changes;
            assert_eq!(Confirm::from(got), confirm, "{op:?}");
        }
        Op::UnsubscribeAll(ns, s) => {
            let got: Vec<Confirm> = registry
                .unsubscribe_all(*ns, *s, |c| events.push(Event::from(c)))
                .into_iter()
                .map(Confirm::from)
                .collect();
            let (confirms, changes) = model.unsubscribe_all(*ns, *s);
            expected_events = changes;
            assert_eq!(got, confirms, "{op:?}");
        }
        Op::RemoveSubscriber(s) => {
            let counts = registry.remove_subscriber(*s, |c| events.push(Event::from(c)));
            events.sort();
            let (expected, changes) = model.remove_subscriber(*s);
            expected_events = changes;
            assert_eq!(counts, expected, "{op:?}");
        }
        Op::Publish(channel) => check_publish(registry, model, channel),
        Op::SPublish(channel) => {
            let mut got = Vec::new();
            let n = registry.spublish(channel, |s| got.push(s));
            let expected = model.spublish(channel);
            assert_eq!(got, expected, "{op:?}");
            assert_eq!(n, expected.len(), "{op:?}: return value");
        }
        Op::Route(ns, name) => {
            let got = registry.route(*ns, name).map(RouteView::of);
            assert_eq!(got, model.route(*ns, name), "{op:?}");
            assert_eq!(
                registry.numsub(*ns, name),
                model.numsub(*ns, name),
                "{op:?}: numsub"
            );
        }
        Op::NumPat => assert_eq!(registry.numpat(), model.numpat(), "{op:?}"),
        Op::Names(ns, glob) => {
            let glob = glob.as_deref();
            let mut got: Vec<Vec<u8>> = registry.names(*ns, glob).map(|n| n.to_vec()).collect();
            got.sort();
            assert_eq!(got, model.names(*ns, glob), "{op:?}");
        }
        Op::Counts(s) => {
            assert_eq!(registry.counts(*s), model.counts(*s), "{op:?}");
        }
    }
    assert_eq!(events, expected_events, "{op:?}: changes");
    let created = expected_events
        .iter()
        .filter(|e| e.joined && e.first_or_last)
        .count() as u64;
    assert_eq!(
        built() - built_before,
        created,
        "{op:?}: one route value built per route created"
    );

    registry.check_invariants();
    assert_eq!(registry.numpat(), model.numpat(), "after {op:?}: numpat");
    assert_eq!(
        registry.subscriber_count(),
        model.subscribers().len(),
        "after {op:?}: subscriber_count"
    );
    assert_eq!(
        registry.is_empty(),
        model.is_empty(),
        "after {op:?}: is_empty"
    );
    check_routes(registry, model, op);

    let version = registry.patterns_version();
    if model.pattern_order == patterns_before {
        assert_eq!(
            version, version_before,
            "after {op:?}: patterns_version changed with the patterns unchanged"
        );
    } else {
        assert_ne!(
            version, version_before,
            "after {op:?}: patterns_version unchanged though the patterns changed"
        );
        assert!(
            !model.old_versions.contains(&version),
            "after {op:?}: patterns_version went back to {version}"
        );
        model.old_versions.insert(version_before);
    }
    model.version = Some(version);
}

/// `PUBLISH channel` through every routing method: `publish`'s deliveries
/// and reply, `for_each_route`'s routes and count, `for_each_pattern_route`'s
/// routes with their ids, and `pattern_route` of each id.
fn check_publish<S>(registry: &Registry<S, Tag>, model: &mut Model<S>, channel: &[u8])
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    let mut got = Vec::new();
    let n = registry.publish(channel, |s, pattern| {
        got.push((s, pattern.map(|p| p.as_bytes().to_vec())));
    });
    let expected = model.publish(channel);
    assert_eq!(got, expected, "publish {channel:?}");
    assert_eq!(n, expected.len(), "publish {channel:?}: return value");

    let mut routes = Vec::new();
    let n = registry.for_each_route(channel, |route| routes.push(RouteView::of(route)));
    let expected = model.routes(channel);
    assert_eq!(routes, expected, "for_each_route {channel:?}");
    assert_eq!(
        n,
        expected.len(),
        "for_each_route {channel:?}: return value"
    );

    let mut with_ids = Vec::new();
    registry.for_each_pattern_route(channel, |id, route| {
        with_ids.push((id, RouteView::of(route)));
    });
    let pattern_routes: Vec<RouteView<S>> = with_ids.iter().map(|(_, r)| r.clone()).collect();
    let expected_patterns: Vec<RouteView<S>> = expected
        .into_iter()
        .filter(|r| r.namespace == Namespace::Pattern)
        .collect();
    assert_eq!(
        pattern_routes, expected_patterns,
        "for_each_pattern_route {channel:?}"
    );
    for (id, route) in &with_ids {
        assert_eq!(
            registry.pattern_route(*id).map(RouteView::of).as_ref(),
            Some(route),
            "pattern_route({id:?}) from publish {channel:?}"
        );
        model.saw_pattern_id(*id, route);
    }
}

/// Every route against the model, and every remembered pattern id.
fn check_routes<S>(registry: &Registry<S, Tag>, model: &mut Model<S>, op: &Op<S>)
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    let mut all = Vec::new();
    registry.for_each_name(|route| all.push(RouteView::of(route)));
    all.sort();
    let expected = model.all_routes();
    assert_eq!(all, expected, "after {op:?}: for_each_name");
    for route in &expected {
        assert_eq!(
            registry
                .route(route.namespace, &route.name)
                .map(RouteView::of)
                .as_ref(),
            Some(route),
            "after {op:?}: route"
        );
        assert_eq!(
            registry.numsub(route.namespace, &route.name),
            route.len,
            "after {op:?}: numsub"
        );
    }

    // Ids of freed patterns are forgotten: the registry may reuse them.
    let serials = &model.serials;
    model
        .pattern_ids
        .retain(|(p, serial, _)| serials.get(&(Namespace::Pattern, p.clone())) == Some(serial));
    let mut ids = BTreeSet::new();
    for (pattern, _, id) in &model.pattern_ids {
        assert!(
            ids.insert(id.get()),
            "after {op:?}: two held patterns share {id:?}"
        );
        assert_eq!(
            registry.pattern_route(*id).map(RouteView::of),
            model.route(Namespace::Pattern, pattern),
            "after {op:?}: pattern_route({id:?}) of {pattern:?}"
        );
    }
}

/// Removes every subscriber the model knows, checking each removal, then
/// asserts that the registry is empty and lists nothing.
///
/// # Panics
///
/// Panics if a removal disagrees or anything is left.
pub fn drain<S>(registry: &mut Registry<S, Tag>, model: &mut Model<S>)
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    for s in model.subscribers() {
        check_op(registry, model, &Op::RemoveSubscriber(s));
    }
    assert!(model.is_empty());
    assert!(
        registry.is_empty(),
        "registry empty after removing everyone"
    );
    assert_eq!(registry.subscriber_count(), 0);
    assert_eq!(registry.numpat(), 0);
    for ns in Namespace::ALL {
        assert_eq!(registry.names(ns, None).count(), 0, "{ns:?}");
    }
    let mut routes = 0;
    registry.for_each_name(|_| routes += 1);
    assert_eq!(routes, 0, "no route left");
    registry.check_invariants();
}
