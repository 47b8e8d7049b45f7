//! The subscription registry: one example per rule of REDIS-SEMANTICS.md §2
//! (confirmations, publish routing, removal) and §3 (introspection), churn,
//! and a proptest of random operation sequences against the naive model in
//! `support/model.rs`.
#![allow(clippy::unwrap_used)]

#[allow(unreachable_pub)]
mod support {
    pub mod model;
    pub mod reference_glob;
}

use proptest::prelude::*;
use support::model::{self, Confirm, Model, Op, Space};
use tidings_core::registry::{Confirmation, Counts, Kind, Registry};

/// An owned confirmation with a name.
fn named(kind: Kind, name: &[u8], count: usize, interest_changed: bool) -> Confirm {
    Confirm {
        kind,
        name: Some(name.to_vec()),
        count,
        interest_changed,
    }
}

/// The single nameless confirmation of an "unsubscribe all" of nothing.
fn nameless(kind: Kind, count: usize) -> Confirm {
    Confirm {
        kind,
        name: None,
        count,
        interest_changed: false,
    }
}

/// Runs the "unsubscribe all" of `space` and collects its confirmations.
fn drop_all(r: &mut Registry<u64>, space: Space, s: u64) -> Vec<Confirm> {
    let mut out = Vec::new();
    let confirm = |c: Confirmation<'_>| out.push(Confirm::from(c));
    match space {
        Space::Channels => r.unsubscribe_all(s, confirm),
        Space::Patterns => r.punsubscribe_all(s, confirm),
        Space::Shards => r.sunsubscribe_all(s, confirm),
    }
    out
}

type Deliveries = Vec<(u64, Option<Vec<u8>>)>;

/// `PUBLISH`: the return value and every delivery, in order.
fn publish(r: &Registry<u64>, channel: &[u8]) -> (usize, Deliveries) {
    let mut out = Vec::new();
    let n = r.publish(channel, |s, p| {
        out.push((s, p.map(|p| p.as_bytes().to_vec())))
    });
    (n, out)
}

/// `SPUBLISH`: the return value and every subscriber reached, in order.
fn spublish(r: &Registry<u64>, channel: &[u8]) -> (usize, Vec<u64>) {
    let mut out = Vec::new();
    let n = r.spublish(channel, |s| out.push(s));
    (n, out)
}

fn msg(s: u64) -> (u64, Option<Vec<u8>>) {
    (s, None)
}

fn pmsg(s: u64, pattern: &[u8]) -> (u64, Option<Vec<u8>>) {
    (s, Some(pattern.to_vec()))
}

fn sorted(names: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = names.map(|n| n.as_ref().to_vec()).collect();
    v.sort();
    v
}

fn counts(channels: usize, patterns: usize, shard_channels: usize) -> Counts {
    Counts {
        channels,
        patterns,
        shard_channels,
    }
}

// ---------------------------------------------------------------- §2 confirmations

#[test]
fn every_operation_confirms_with_its_kind_and_count() {
    let mut r = Registry::new();
    let c = |c: Confirmation<'_>| Confirm::from(c);
    assert_eq!(
        c(r.subscribe(1, b"a")),
        named(Kind::Subscribe, b"a", 1, true)
    );
    assert_eq!(
        c(r.psubscribe(1, b"p*")),
        named(Kind::PSubscribe, b"p*", 2, true),
        "channels plus patterns"
    );
    assert_eq!(
        c(r.ssubscribe(1, b"s")),
        named(Kind::SSubscribe, b"s", 1, true),
        "shard channels alone"
    );
    assert_eq!(
        c(r.subscribe(1, b"b")),
        named(Kind::Subscribe, b"b", 3, true),
        "shard channels are not counted"
    );
    assert_eq!(
        c(r.unsubscribe(1, b"a")),
        named(Kind::Unsubscribe, b"a", 2, true)
    );
    assert_eq!(
        c(r.punsubscribe(1, b"p*")),
        named(Kind::PUnsubscribe, b"p*", 1, true)
    );
    assert_eq!(
        c(r.sunsubscribe(1, b"s")),
        named(Kind::SUnsubscribe, b"s", 0, true)
    );
    assert_eq!(r.counts(1), counts(1, 0, 0));
    r.check_invariants();
}

#[test]
fn kind_names_are_redis_reply_names() {
    let kinds = [
        (Kind::Subscribe, "subscribe", true),
        (Kind::Unsubscribe, "unsubscribe", false),
        (Kind::PSubscribe, "psubscribe", true),
        (Kind::PUnsubscribe, "punsubscribe", false),
        (Kind::SSubscribe, "ssubscribe", true),
        (Kind::SUnsubscribe, "sunsubscribe", false),
    ];
    for (kind, name, subscribes) in kinds {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(kind.is_subscribe(), subscribes, "{name}");
    }
}

#[test]
fn repeated_subscribe_confirms_same_count_and_never_delivers_twice() {
    let mut r = Registry::new();
    r.subscribe(1, b"other");
    let first = Confirm::from(r.subscribe(1, b"ch"));
    let again = Confirm::from(r.subscribe(1, b"ch"));
    assert_eq!(first, named(Kind::Subscribe, b"ch", 2, true));
    assert_eq!(again, named(Kind::Subscribe, b"ch", 2, false));

    assert_eq!(
        Confirm::from(r.psubscribe(1, b"c*")),
        named(Kind::PSubscribe, b"c*", 3, true)
    );
    assert_eq!(
        Confirm::from(r.psubscribe(1, b"c*")),
        named(Kind::PSubscribe, b"c*", 3, false)
    );
    assert_eq!(
        Confirm::from(r.ssubscribe(1, b"ch")),
        named(Kind::SSubscribe, b"ch", 1, true)
    );
    assert_eq!(
        Confirm::from(r.ssubscribe(1, b"ch")),
        named(Kind::SSubscribe, b"ch", 1, false)
    );

    assert_eq!(publish(&r, b"ch"), (2, vec![msg(1), pmsg(1, b"c*")]));
    assert_eq!(spublish(&r, b"ch"), (1, vec![1]));
    assert_eq!(r.numsub(b"ch"), 1);
    assert_eq!(r.numpat(), 1);
    assert_eq!(r.counts(1), counts(2, 1, 1));
    r.check_invariants();
}

#[test]
fn unsubscribing_what_is_not_held_confirms_the_current_count() {
    let mut r = Registry::new();
    r.subscribe(1, b"a");
    r.psubscribe(1, b"p*");
    r.ssubscribe(1, b"s");
    r.subscribe(2, b"b");
    assert_eq!(
        Confirm::from(r.unsubscribe(1, b"zz")),
        named(Kind::Unsubscribe, b"zz", 2, false)
    );
    assert_eq!(
        Confirm::from(r.unsubscribe(1, b"b")),
        named(Kind::Unsubscribe, b"b", 2, false),
        "held by someone else only"
    );
    assert_eq!(
        Confirm::from(r.punsubscribe(1, b"q*")),
        named(Kind::PUnsubscribe, b"q*", 2, false)
    );
    assert_eq!(
        Confirm::from(r.punsubscribe(1, b"a")),
        named(Kind::PUnsubscribe, b"a", 2, false),
        "a channel is not a pattern"
    );
    assert_eq!(
        Confirm::from(r.sunsubscribe(1, b"a")),
        named(Kind::SUnsubscribe, b"a", 1, false),
        "a channel is not a shard channel"
    );
    assert_eq!(
        Confirm::from(r.unsubscribe(9, b"a")),
        named(Kind::Unsubscribe, b"a", 0, false),
        "unknown subscriber"
    );
    assert_eq!(
        Confirm::from(r.punsubscribe(9, b"p*")),
        named(Kind::PUnsubscribe, b"p*", 0, false)
    );
    assert_eq!(
        Confirm::from(r.sunsubscribe(9, b"s")),
        named(Kind::SUnsubscribe, b"s", 0, false)
    );
    assert_eq!(r.counts(1), counts(1, 1, 1));
    assert_eq!(r.numsub(b"b"), 1, "the other subscriber keeps its channel");
    assert_eq!(r.subscriber_count(), 2, "no entry created for subscriber 9");
    r.check_invariants();
}

#[test]
fn unsubscribe_all_with_nothing_held_confirms_once_with_no_name() {
    let mut r = Registry::new();
    for space in [Space::Channels, Space::Patterns, Space::Shards] {
        assert_eq!(
            drop_all(&mut r, space, 1),
            [nameless(space.kinds().1, 0)],
            "{space:?} of an unknown subscriber"
        );
    }
    assert!(r.is_empty());

    r.psubscribe(1, b"p*");
    r.psubscribe(1, b"q*");
    r.ssubscribe(1, b"s");
    assert_eq!(
        drop_all(&mut r, Space::Channels, 1),
        [nameless(Kind::Unsubscribe, 2)],
        "UNSUBSCRIBE while patterns remain reports them"
    );
    assert_eq!(
        drop_all(&mut r, Space::Channels, 1),
        [nameless(Kind::Unsubscribe, 2)],
        "and changes nothing"
    );
    r.punsubscribe_all(1, |_| {});
    r.subscribe(1, b"a");
    assert_eq!(
        drop_all(&mut r, Space::Patterns, 1),
        [nameless(Kind::PUnsubscribe, 1)],
        "PUNSUBSCRIBE while a channel remains"
    );
    assert_eq!(
        drop_all(&mut r, Space::Shards, 2),
        [nameless(Kind::SUnsubscribe, 0)]
    );
    r.sunsubscribe_all(1, |_| {});
    assert_eq!(
        drop_all(&mut r, Space::Shards, 1),
        [nameless(Kind::SUnsubscribe, 0)],
        "shard count is shard channels only, though a channel is held"
    );
    assert_eq!(r.counts(1), counts(1, 0, 0));
    r.check_invariants();
}

#[test]
fn unsubscribe_all_confirms_each_name_once_in_byte_order_with_falling_counts() {
    let mut r = Registry::new();
    for name in [&b"b"[..], b"\xff", b"a", b"", b"ab"] {
        r.subscribe(1, name);
    }
    r.subscribe(2, b"b");
    r.psubscribe(1, b"p*");
    r.ssubscribe(1, b"s");
    assert_eq!(
        drop_all(&mut r, Space::Channels, 1),
        [
            named(Kind::Unsubscribe, b"", 5, true),
            named(Kind::Unsubscribe, b"a", 4, true),
            named(Kind::Unsubscribe, b"ab", 3, true),
            named(Kind::Unsubscribe, b"b", 2, false),
            named(Kind::Unsubscribe, b"\xff", 1, true),
        ],
        "the pattern still counts; b is still held by 2"
    );
    assert_eq!(r.counts(1), counts(0, 1, 1));
    assert_eq!(sorted(r.channels(None)), [b"b"]);
    r.check_invariants();

    for pattern in [&b"z*"[..], b"*", b"a?"] {
        r.psubscribe(1, pattern);
    }
    r.psubscribe(2, b"a?");
    r.subscribe(1, b"c");
    assert_eq!(
        drop_all(&mut r, Space::Patterns, 1),
        [
            named(Kind::PUnsubscribe, b"*", 4, true),
            named(Kind::PUnsubscribe, b"a?", 3, false),
            named(Kind::PUnsubscribe, b"p*", 2, true),
            named(Kind::PUnsubscribe, b"z*", 1, true),
        ]
    );
    assert_eq!(r.numpat(), 1);

    r.ssubscribe(1, b"r");
    r.ssubscribe(2, b"s");
    assert_eq!(
        drop_all(&mut r, Space::Shards, 1),
        [
            named(Kind::SUnsubscribe, b"r", 1, true),
            named(Kind::SUnsubscribe, b"s", 0, false),
        ],
        "shard counts ignore channels and patterns"
    );
    assert_eq!(r.counts(1), counts(1, 0, 0));
    assert_eq!(
        drop_all(&mut r, Space::Channels, 1),
        [named(Kind::Unsubscribe, b"c", 0, true)]
    );
    assert_eq!(r.counts(1), Counts::default());
    assert_eq!(r.subscriber_count(), 1, "subscriber 1 holds nothing now");
    r.check_invariants();
}

#[test]
fn shard_counts_are_separate_from_channel_and_pattern_counts() {
    let mut r = Registry::new();
    assert_eq!(r.ssubscribe(1, b"s1").count, 1);
    assert_eq!(r.ssubscribe(1, b"s2").count, 2);
    assert_eq!(r.subscribe(1, b"c").count, 1);
    assert_eq!(r.psubscribe(1, b"p*").count, 2);
    assert_eq!(r.ssubscribe(1, b"s3").count, 3);
    assert_eq!(r.unsubscribe(1, b"c").count, 1);
    assert_eq!(r.sunsubscribe(1, b"s1").count, 2);
    let c = r.counts(1);
    assert_eq!(c, counts(0, 1, 2));
    assert_eq!(c.subscriptions(), 1);
    assert_eq!(r.counts(7), Counts::default());
}

// ---------------------------------------------------------------- §2 publish

#[test]
fn publish_delivers_exact_subscribers_then_patterns_in_first_subscription_order() {
    let mut r = Registry::new();
    // "n*" is subscribed first although "*s" sorts before it.
    r.psubscribe(3, b"n*");
    r.subscribe(2, b"news");
    r.psubscribe(1, b"*s");
    r.subscribe(1, b"news");
    r.psubscribe(2, b"n*");
    r.psubscribe(4, b"x*");
    assert_eq!(
        publish(&r, b"news"),
        (
            5,
            vec![
                msg(2),
                msg(1),
                pmsg(3, b"n*"),
                pmsg(2, b"n*"),
                pmsg(1, b"*s")
            ]
        )
    );

    // A subscriber that leaves and comes back goes to the end of its list.
    r.unsubscribe(2, b"news");
    r.subscribe(2, b"news");
    r.punsubscribe(3, b"n*");
    r.psubscribe(3, b"n*");
    assert_eq!(
        publish(&r, b"news").1,
        [
            msg(1),
            msg(2),
            pmsg(2, b"n*"),
            pmsg(3, b"n*"),
            pmsg(1, b"*s")
        ]
    );

    // A pattern freed and subscribed again is a new pattern: last in order.
    r.punsubscribe(2, b"n*");
    r.punsubscribe(3, b"n*");
    r.psubscribe(3, b"n*");
    assert_eq!(
        publish(&r, b"news").1,
        [msg(1), msg(2), pmsg(1, b"*s"), pmsg(3, b"n*")]
    );
    r.check_invariants();
}

#[test]
fn channel_and_matching_pattern_give_two_deliveries() {
    let mut r = Registry::new();
    r.subscribe(1, b"news");
    r.psubscribe(1, b"new?");
    assert_eq!(publish(&r, b"news"), (2, vec![msg(1), pmsg(1, b"new?")]));
    assert_eq!(publish(&r, b"newt"), (1, vec![pmsg(1, b"new?")]));
    assert_eq!(publish(&r, b"nothing"), (0, vec![]));
}

#[test]
fn two_matching_patterns_give_two_pmessages() {
    let mut r = Registry::new();
    r.psubscribe(1, b"a*");
    r.psubscribe(1, b"*z");
    r.psubscribe(1, b"q*");
    assert_eq!(
        publish(&r, b"abcz"),
        (2, vec![pmsg(1, b"a*"), pmsg(1, b"*z")])
    );
}

#[test]
fn publish_never_reaches_shard_subscribers() {
    let mut r = Registry::new();
    r.ssubscribe(1, b"ch");
    assert_eq!(publish(&r, b"ch"), (0, vec![]));
    r.subscribe(2, b"ch");
    assert_eq!(publish(&r, b"ch"), (1, vec![msg(2)]));
}

#[test]
fn spublish_reaches_only_shard_subscribers_of_the_exact_channel() {
    let mut r = Registry::new();
    r.subscribe(1, b"ch");
    r.psubscribe(2, b"ch*");
    r.psubscribe(2, b"*");
    r.ssubscribe(4, b"ch");
    r.ssubscribe(3, b"ch");
    r.ssubscribe(5, b"ch2");
    assert_eq!(
        spublish(&r, b"ch"),
        (2, vec![4, 3]),
        "in subscription order"
    );
    assert_eq!(spublish(&r, b"ch2"), (1, vec![5]));
    assert_eq!(spublish(&r, b"c*"), (0, vec![]), "no shard patterns");
    assert_eq!(spublish(&r, b"other"), (0, vec![]));
}

#[test]
fn shard_namespace_is_independent_of_the_normal_one() {
    let mut r = Registry::new();
    assert!(r.subscribe(1, b"x").interest_changed);
    assert!(
        r.ssubscribe(2, b"x").interest_changed,
        "first shard subscriber of x, though x is a channel too"
    );
    r.ssubscribe(1, b"x");
    assert_eq!(r.numsub(b"x"), 1);
    assert_eq!(r.shard_numsub(b"x"), 2);

    let c = Confirm::from(r.unsubscribe(1, b"x"));
    assert_eq!(c, named(Kind::Unsubscribe, b"x", 0, true));
    assert_eq!(spublish(&r, b"x"), (2, vec![2, 1]), "shard side untouched");
    assert_eq!(publish(&r, b"x"), (0, vec![]));

    r.subscribe(1, b"x");
    r.sunsubscribe_all(1, |_| {});
    r.sunsubscribe(2, b"x");
    assert_eq!(
        publish(&r, b"x"),
        (1, vec![msg(1)]),
        "normal side untouched"
    );
    assert_eq!(r.shard_numsub(b"x"), 0);
    assert_eq!(r.shard_channels(None).count(), 0);
    assert_eq!(sorted(r.channels(None)), [b"x"]);
    r.check_invariants();
}

// ---------------------------------------------------------------- §3 introspection

#[test]
fn channels_lists_exact_subscriptions_only() {
    let mut r = Registry::new();
    assert_eq!(r.channels(None).count(), 0);
    r.subscribe(1, b"news.sports");
    r.subscribe(2, b"news.sports");
    r.subscribe(1, b"news.weather");
    r.subscribe(2, b"music");
    r.psubscribe(1, b"news.*");
    r.psubscribe(3, b"news.tech");
    r.ssubscribe(3, b"news.shard");
    assert_eq!(
        sorted(r.channels(None)),
        [&b"music"[..], b"news.sports", b"news.weather"],
        "each channel once; no pattern, no shard channel"
    );
    assert_eq!(
        sorted(r.channels(Some(b"news.*"))),
        [&b"news.sports"[..], b"news.weather"]
    );
    assert_eq!(sorted(r.channels(Some(b"*s[pq]*"))), [b"news.sports"]);
    assert_eq!(
        sorted(r.channels(Some(b"news.tech"))),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(r.channels(Some(b"[]")).count(), 0);
    r.unsubscribe(2, b"music");
    assert_eq!(r.channels(Some(b"m*")).count(), 0, "freed when emptied");
}

#[test]
fn numsub_counts_exact_subscribers_only() {
    let mut r = Registry::new();
    r.subscribe(1, b"ch");
    r.subscribe(2, b"ch");
    r.psubscribe(3, b"ch");
    r.psubscribe(4, b"c*");
    r.ssubscribe(5, b"ch");
    assert_eq!(r.numsub(b"ch"), 2);
    assert_eq!(r.numsub(b"c*"), 0, "a pattern is not a channel");
    assert_eq!(r.numsub(b"unknown"), 0);
    assert_eq!(r.shard_numsub(b"ch"), 1);
    assert_eq!(r.shard_numsub(b"unknown"), 0);
}

#[test]
fn numpat_counts_distinct_patterns() {
    let mut r = Registry::new();
    assert_eq!(r.numpat(), 0);
    r.psubscribe(1, b"foo*");
    r.psubscribe(2, b"foo*");
    assert_eq!(r.numpat(), 1, "foo* held by two subscribers counts once");
    r.psubscribe(2, b"bar*");
    r.subscribe(3, b"baz*");
    assert_eq!(r.numpat(), 2, "a channel named like a pattern is not one");
    let mut held: Vec<(Vec<u8>, usize)> = r
        .patterns()
        .map(|(p, n)| (p.as_bytes().to_vec(), n))
        .collect();
    held.sort();
    assert_eq!(held, [(b"bar*".to_vec(), 1), (b"foo*".to_vec(), 2)]);
    r.punsubscribe(1, b"foo*");
    assert_eq!(r.numpat(), 2);
    r.punsubscribe(2, b"foo*");
    assert_eq!(r.numpat(), 1);
}

#[test]
fn shard_channels_and_shard_numsub() {
    let mut r = Registry::new();
    r.ssubscribe(1, b"{user1}.a");
    r.ssubscribe(2, b"{user1}.a");
    r.ssubscribe(2, b"{user2}.b");
    r.subscribe(3, b"{user3}.c");
    assert_eq!(
        sorted(r.shard_channels(None)),
        [&b"{user1}.a"[..], b"{user2}.b"]
    );
    assert_eq!(sorted(r.shard_channels(Some(b"*.b"))), [b"{user2}.b"]);
    assert_eq!(r.shard_channels(Some(b"*.c")).count(), 0);
    assert_eq!(r.shard_numsub(b"{user1}.a"), 2);
    assert_eq!(r.shard_numsub(b"{user3}.c"), 0);
}

// ---------------------------------------------------------------- removal and interest

#[test]
fn remove_subscriber_frees_everything_silently() {
    let mut r = Registry::new();
    r.subscribe(1, b"a");
    r.subscribe(1, b"b");
    r.psubscribe(1, b"p*");
    r.ssubscribe(1, b"s");
    r.subscribe(2, b"a");
    r.psubscribe(2, b"p*");
    assert_eq!(r.remove_subscriber(1), counts(2, 1, 1));
    assert_eq!(r.counts(1), Counts::default());
    assert_eq!(publish(&r, b"a"), (1, vec![msg(2)]));
    assert_eq!(publish(&r, b"pq"), (1, vec![pmsg(2, b"p*")]));
    assert_eq!(spublish(&r, b"s"), (0, vec![]));
    assert_eq!(sorted(r.channels(None)), [b"a"]);
    assert_eq!(r.subscriber_count(), 1);
    r.check_invariants();

    assert_eq!(r.remove_subscriber(1), Counts::default(), "again: nothing");
    assert_eq!(r.remove_subscriber(2), counts(1, 1, 0));
    assert!(r.is_empty());
    assert_eq!(r.subscriber_count(), 0);
    assert_eq!(r.numpat(), 0);
    assert_eq!(r.channels(None).count(), 0);
    r.check_invariants();
}

#[test]
fn interest_changes_exactly_on_first_subscriber_and_last_unsubscriber() {
    let mut r = Registry::new();
    assert!(r.subscribe(1, b"c").interest_changed);
    assert!(!r.subscribe(2, b"c").interest_changed);
    assert!(!r.subscribe(2, b"c").interest_changed);
    assert!(!r.unsubscribe(1, b"c").interest_changed);
    assert!(!r.unsubscribe(1, b"c").interest_changed, "not held");
    assert!(r.unsubscribe(2, b"c").interest_changed);
    assert!(!r.unsubscribe(2, b"c").interest_changed, "already freed");

    assert!(r.psubscribe(1, b"p*").interest_changed);
    assert!(!r.psubscribe(2, b"p*").interest_changed);
    assert!(!r.punsubscribe(2, b"p*").interest_changed);
    assert!(r.punsubscribe(1, b"p*").interest_changed);

    assert!(r.ssubscribe(1, b"s").interest_changed);
    assert!(!r.ssubscribe(2, b"s").interest_changed);
    assert!(!r.sunsubscribe(1, b"s").interest_changed);
    assert!(r.sunsubscribe(2, b"s").interest_changed);
    assert!(r.is_empty());
}

#[test]
fn interest_changes_through_unsubscribe_all() {
    let mut r = Registry::new();
    r.subscribe(1, b"a");
    r.subscribe(1, b"b");
    r.subscribe(2, b"b");
    r.psubscribe(1, b"x*");
    r.psubscribe(2, b"y*");
    r.psubscribe(1, b"y*");
    r.ssubscribe(1, b"s");
    r.ssubscribe(1, b"t");
    r.ssubscribe(2, b"t");
    let changed = |cs: Vec<Confirm>| -> Vec<(Vec<u8>, bool)> {
        cs.into_iter()
            .map(|c| (c.name.unwrap(), c.interest_changed))
            .collect()
    };
    assert_eq!(
        changed(drop_all(&mut r, Space::Channels, 1)),
        [(b"a".to_vec(), true), (b"b".to_vec(), false)]
    );
    assert_eq!(
        changed(drop_all(&mut r, Space::Patterns, 1)),
        [(b"x*".to_vec(), true), (b"y*".to_vec(), false)]
    );
    assert_eq!(
        changed(drop_all(&mut r, Space::Shards, 1)),
        [(b"s".to_vec(), true), (b"t".to_vec(), false)]
    );
    assert_eq!(
        changed(drop_all(&mut r, Space::Channels, 2)),
        [(b"b".to_vec(), true)]
    );
    assert_eq!(
        changed(drop_all(&mut r, Space::Patterns, 2)),
        [(b"y*".to_vec(), true)]
    );
    assert_eq!(
        changed(drop_all(&mut r, Space::Shards, 2)),
        [(b"t".to_vec(), true)]
    );
    assert!(r.is_empty());
}

#[test]
fn remove_subscriber_with_reports_exactly_the_names_it_frees() {
    let mut r = Registry::new();
    r.subscribe(1, b"a");
    r.subscribe(1, b"shared");
    r.subscribe(2, b"shared");
    r.psubscribe(1, b"p*");
    r.psubscribe(1, b"q*");
    r.psubscribe(2, b"q*");
    r.ssubscribe(1, b"a");
    r.ssubscribe(1, b"t");
    r.ssubscribe(2, b"t");
    let mut freed = Vec::new();
    let held = r.remove_subscriber_with(1, |kind, name| freed.push((kind, name.to_vec())));
    assert_eq!(held, counts(2, 2, 2));
    freed.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    assert_eq!(
        freed,
        [
            (Kind::PUnsubscribe, b"p*".to_vec()),
            (Kind::SUnsubscribe, b"a".to_vec()),
            (Kind::Unsubscribe, b"a".to_vec()),
        ]
    );

    let mut freed = Vec::new();
    r.remove_subscriber_with(2, |kind, name| freed.push((kind, name.to_vec())));
    freed.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    assert_eq!(
        freed,
        [
            (Kind::PUnsubscribe, b"q*".to_vec()),
            (Kind::SUnsubscribe, b"t".to_vec()),
            (Kind::Unsubscribe, b"shared".to_vec()),
        ]
    );
    let mut called = false;
    assert_eq!(
        r.remove_subscriber_with(2, |_, _| called = true),
        Counts::default()
    );
    assert!(!called, "removing an unknown subscriber frees nothing");
    assert!(r.is_empty());
    r.check_invariants();
}

// ---------------------------------------------------------------- binary names and churn

#[test]
fn names_are_arbitrary_bytes() {
    // 1 MiB of every byte value but NUL, behind a prefix no glob below matches.
    let mut big = b"big:".to_vec();
    big.extend((0..(1 << 20) - 4).map(|i: u32| (i % 255) as u8 + 1));
    let names: [&[u8]; 5] = [b"", b"\0", b"a\0b", b"\xff\xfe\x80", &big];
    let mut r = Registry::new();
    for (i, name) in names.iter().enumerate() {
        let c = r.subscribe(1, name);
        assert!(c.name == Some(*name) && c.count == i + 1 && c.interest_changed);
        r.ssubscribe(2, name);
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(publish(&r, name), (1, vec![msg(1)]), "name {i}");
        assert_eq!(spublish(&r, name), (1, vec![2]), "name {i}");
        assert_eq!(r.numsub(name), 1, "name {i}");
        assert_eq!(r.shard_numsub(name), 1, "name {i}");
    }
    assert_eq!(publish(&r, b"a\0"), (0, vec![]), "NUL does not end a name");
    assert_eq!(publish(&r, &big[..big.len() - 1]), (0, vec![]));
    assert!(sorted(r.channels(None)) == sorted(names.iter()));
    assert!(sorted(r.shard_channels(None)) == sorted(names.iter()));
    assert_eq!(sorted(r.channels(Some(b"a\0*"))), [b"a\0b"]);
    assert_eq!(sorted(r.channels(Some(b"\xff*"))), [b"\xff\xfe\x80"]);
    assert_eq!(sorted(r.channels(Some(b""))), [b""]);
    assert_eq!(r.channels(Some(b"big:*")).count(), 1);

    // Binary patterns, and a 1 MiB one: the channel's first 1 MiB - 1 bytes
    // (a literal prefix, escaped where it holds metacharacters) then `*`.
    let mut big_pattern = Vec::new();
    for &b in &big[..big.len() - 1] {
        if b"*?[\\".contains(&b) {
            big_pattern.push(b'\\');
        }
        big_pattern.push(b);
    }
    big_pattern.push(b'*');
    r.psubscribe(3, b"\0*");
    r.psubscribe(3, b"*\x80");
    r.psubscribe(3, b"");
    r.psubscribe(3, &big_pattern);
    assert_eq!(r.numpat(), 4);
    assert_eq!(
        publish(&r, b"\0\x80").1,
        [pmsg(3, b"\0*"), pmsg(3, b"*\x80")]
    );
    assert_eq!(publish(&r, b"").1, [msg(1), pmsg(3, b"")]);
    assert!(
        publish(&r, &big) == (2, vec![msg(1), pmsg(3, &big_pattern)]),
        "the 1 MiB pattern matches the 1 MiB channel"
    );
    let mut longer = big.clone();
    longer.push(b'!');
    assert!(publish(&r, &longer) == (1, vec![pmsg(3, &big_pattern)]));
    let mut near = big.clone();
    near[1000] ^= 0x40;
    assert_eq!(publish(&r, &near).0, 0);
    r.check_invariants();

    let order: Vec<Vec<u8>> = drop_all(&mut r, Space::Channels, 1)
        .into_iter()
        .map(|c| c.name.unwrap())
        .collect();
    assert!(
        order == sorted(names.iter()),
        "byte order, NUL and 0xff included"
    );
    assert_eq!(r.remove_subscriber(3), counts(0, 4, 0));
    for name in names {
        assert!(r.sunsubscribe(2, name).interest_changed);
    }
    assert!(r.is_empty());
    r.check_invariants();
}

#[test]
fn churn_frees_everything() {
    const N: u64 = 100_000;
    let mut r = Registry::new();
    let mut live = std::collections::VecDeque::new();
    for i in 0..N {
        let s = i % 7;
        let channel = format!("channel:{i}").into_bytes();
        let pattern = format!("p:{}:*{}", i % 1000, i).into_bytes();
        let shard = format!("{{shard{i}}}").into_bytes();
        assert!(r.subscribe(s, &channel).interest_changed);
        assert!(r.psubscribe(s, &pattern).interest_changed);
        assert!(r.ssubscribe(s, &shard).interest_changed);
        live.push_back((s, channel, pattern, shard));
        // Keep about 64 entries of each kind live while churning.
        if live.len() > 64 {
            let (s, channel, pattern, shard) = live.pop_front().unwrap();
            assert!(r.unsubscribe(s, &channel).interest_changed);
            assert!(r.punsubscribe(s, &pattern).interest_changed);
            assert!(r.sunsubscribe(s, &shard).interest_changed);
        }
        if i % 10_007 == 0 {
            r.check_invariants();
            assert_eq!(r.numpat(), live.len());
        }
    }
    assert_eq!(r.channels(None).count(), 64);
    assert_eq!(r.numpat(), 64);
    assert_eq!(r.shard_channels(None).count(), 64);
    // Half leave one name at a time, the rest disconnect.
    while live.len() > 32 {
        let (s, channel, pattern, shard) = live.pop_front().unwrap();
        r.unsubscribe(s, &channel);
        r.punsubscribe(s, &pattern);
        r.sunsubscribe(s, &shard);
    }
    for s in 0..7 {
        r.remove_subscriber(s);
    }
    assert!(r.is_empty());
    assert_eq!(r.subscriber_count(), 0);
    assert_eq!(r.numpat(), 0);
    assert_eq!(r.patterns().count(), 0);
    assert_eq!(r.channels(None).count(), 0);
    assert_eq!(r.shard_channels(None).count(), 0);
    assert_eq!(publish(&r, b"channel:99999"), (0, vec![]));
    assert_eq!(publish(&r, b"p:999:x99999"), (0, vec![]));
    r.check_invariants();
}

// ---------------------------------------------------------------- model-based

/// Names that collide often: most of the generated operations touch the
/// same few channels and patterns, so names gain several subscribers and a
/// channel matches several patterns.
const FAVOURITES: &[&[u8]] = &[b"", b"a", b"ab", b"*", b"a*", b"*b", b"?", b"[a"];

/// Names of length 0..=3 over `ab*?[`: channels, patterns (`[` makes classes,
/// a trailing `[` an empty one) and globs, all from the same pool.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(FAVOURITES).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(prop::sample::select(b"ab*?[".to_vec()), 0..=3),
    ]
}

fn op() -> impl Strategy<Value = Op<u8>> {
    (0u8..36, 0u8..4, name(), prop::option::of(name())).prop_map(|(code, s, name, glob)| match code
    {
        0..=5 => Op::Subscribe(Space::Channels, s, name),
        6..=7 => Op::Unsubscribe(Space::Channels, s, name),
        8 => Op::UnsubscribeAll(Space::Channels, s),
        9..=14 => Op::Subscribe(Space::Patterns, s, name),
        15..=16 => Op::Unsubscribe(Space::Patterns, s, name),
        17 => Op::UnsubscribeAll(Space::Patterns, s),
        18..=20 => Op::Subscribe(Space::Shards, s, name),
        21 => Op::Unsubscribe(Space::Shards, s, name),
        22 => Op::UnsubscribeAll(Space::Shards, s),
        23 => Op::RemoveSubscriber(s),
        24..=27 => Op::Publish(name),
        28 => Op::SPublish(name),
        29 => Op::NumSub(Space::Channels, name),
        30 => Op::NumSub(Space::Shards, name),
        31 => Op::NumPat,
        32 => Op::Channels(Space::Channels, glob),
        33 => Op::Channels(Space::Shards, glob),
        34 => Op::Patterns,
        _ => Op::Counts(s),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Random operation sequences from four subscribers agree with the naive
    /// model at every step: confirmations, ordered deliveries, return values,
    /// introspection and invariants; removing everyone empties the registry.
    #[test]
    fn agrees_with_naive_model(ops in prop::collection::vec(op(), 0..40)) {
        let mut registry = Registry::new();
        let mut model = Model::default();
        for op in &ops {
            model::check_op(&mut registry, &mut model, op);
        }
        model::drain(&mut registry, &mut model);
    }
}
