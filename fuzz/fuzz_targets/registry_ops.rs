//! Fuzzes `tidings_core::Registry` against the naive model of
//! `core/tests/support/model.rs`: every confirmation and every change (with
//! the route value it lends), every publish (the ordered deliveries, routes
//! and pattern ids, and the reply), every introspection answer,
//! `patterns_version`, and the registry's `check_invariants` after each
//! operation. At the end every subscriber is removed and the registry must
//! be empty.
//!
//! Names come from a small alphabet heavy in glob metacharacters, so that
//! names collide and patterns match. The bound checked on top of the model:
//! a publish never reports more deliveries than there are (subscriber, name)
//! pairs held.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::{Corpus, fuzz_target};
use tidings_core::Namespace;

#[path = "../../core/tests/support/reference_glob.rs"]
mod reference_glob;

#[allow(dead_code)]
#[path = "../../core/tests/support/model.rs"]
mod model;

use model::{Model, Op};

/// Operations per input; longer inputs are rejected.
const MAX_OPS: usize = 256;

/// Bytes names are drawn from.
const ALPHABET: &[u8] = b"ab*?[]^-\\:\0\xff";

#[derive(Arbitrary, Debug)]
enum FuzzSpace {
    Channels,
    Patterns,
    Shards,
}

#[derive(Arbitrary, Debug)]
enum FuzzOp {
    Subscribe(FuzzSpace, u8, Vec<u8>),
    Unsubscribe(FuzzSpace, u8, Vec<u8>),
    UnsubscribeAll(FuzzSpace, u8),
    RemoveSubscriber(u8),
    Publish(Vec<u8>),
    SPublish(Vec<u8>),
    Route(FuzzSpace, Vec<u8>),
    NumPat,
    Names(FuzzSpace, Option<Vec<u8>>),
    Counts(u8),
}

fn space(s: &FuzzSpace) -> Namespace {
    match s {
        FuzzSpace::Channels => Namespace::Channel,
        FuzzSpace::Patterns => Namespace::Pattern,
        FuzzSpace::Shards => Namespace::Shard,
    }
}

/// Maps fuzzer bytes onto the small alphabet (at most 6 bytes long).
fn name(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .take(6)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
        .collect()
}

/// Four subscribers, so that they share names.
fn subscriber(s: u8) -> u8 {
    s % 4
}

fn op(f: &FuzzOp) -> Op<u8> {
    match f {
        FuzzOp::Subscribe(sp, s, n) => Op::Subscribe(space(sp), subscriber(*s), name(n)),
        FuzzOp::Unsubscribe(sp, s, n) => Op::Unsubscribe(space(sp), subscriber(*s), name(n)),
        FuzzOp::UnsubscribeAll(sp, s) => Op::UnsubscribeAll(space(sp), subscriber(*s)),
        FuzzOp::RemoveSubscriber(s) => Op::RemoveSubscriber(subscriber(*s)),
        FuzzOp::Publish(n) => Op::Publish(name(n)),
        FuzzOp::SPublish(n) => Op::SPublish(name(n)),
        FuzzOp::Route(sp, n) => Op::Route(space(sp), name(n)),
        FuzzOp::NumPat => Op::NumPat,
        FuzzOp::Names(sp, glob) => Op::Names(space(sp), glob.as_deref().map(name)),
        FuzzOp::Counts(s) => Op::Counts(subscriber(*s)),
    }
}

fuzz_target!(|ops: Vec<FuzzOp>| -> Corpus {
    if ops.len() > MAX_OPS {
        return Corpus::Reject;
    }
    let mut registry = model::registry::<u8>();
    let mut model: Model<u8> = Model::default();
    for f in &ops {
        let op = op(f);
        if let Op::Publish(channel) = &op {
            let held: usize = (0..4u8).map(|s| registry.counts(s).subscriptions()).sum();
            assert!(
                registry.publish(channel, |_, _| {}) <= held,
                "more deliveries than pairs held"
            );
        }
        model::check_op(&mut registry, &mut model, &op);
    }
    model::drain(&mut registry, &mut model);
    Corpus::Keep
});
