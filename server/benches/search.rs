//! The cost of one Resource Search page: 100 results from an inventory of 100,000
//! resources (1,000 owners with 100 documents each), through `Searcher::resources` as the
//! AuthZEN front end calls it (identity, plan, index, the plan on each candidate, the page
//! token). Cases: the owner's own documents (a glob: an id range), the documents tagged with
//! the subject's name (tag equality: a posting list), every document (an admin: the first
//! 100 ids), a tag pattern the index cannot narrow (`StringLike`: the plan runs on each
//! resource in id order until the page is full), and one that matches nothing (the call
//! stops after `MAX_EXAMINED` resources with an empty page and a token to go on).
//!
//! Prints a report (median of many timed batches, per page); `PDP_BENCH_QUICK=1` skips
//! criterion and prints only the report.

#[path = "util/mod.rs"]
mod util;

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use pdp_server::decider::{Call, CheckInput, Decider};
use pdp_server::search::inventory::Inventory;
use pdp_server::search::{Paging, Searcher};
use pdp_server::state::{Snapshot, State};

const OWNERS: usize = 1000;
const PER_OWNER: usize = 100;
const TARGET_MS: f64 = 10.0;

const POLICY: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "doc:read"
    Resource: "doc:${aws:username}/*"
  - Effect: Allow
    Action: "doc:share"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
  - Effect: Allow
    Action: "doc:list"
    Resource: "doc:*"
    Condition:
      StringLike: { "aws:ResourceTag/visibility": "pub*" }
  - Effect: Allow
    Action: "doc:find"
    Resource: "doc:*"
    Condition:
      StringLike: { "aws:ResourceTag/owner": "nobody*" }
  - Effect: Deny
    Action: "doc:*"
    Resource: "doc:*/secret*"
"#;

const ADMIN: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "doc:*"
    Resource: "*"
"#;

fn inventory() -> Inventory {
    let mut lines = String::new();
    for o in 0..OWNERS {
        for i in 0..PER_OWNER {
            let visibility = if i % 3 == 0 { "public" } else { "private" };
            // Each owner's documents are tagged with the next owner's name, so that the
            // tag case reads a posting list, not the id range.
            lines.push_str(&format!(
                "{{\"id\": \"user-{o}/{i:04}\", \"type\": \"doc\", \"tags\": {{\"owner\": \"user-{}\", \"visibility\": \"{visibility}\"}}}}\n",
                (o + 1) % OWNERS
            ));
        }
    }
    match Inventory::parse("resources.jsonl", lines.as_bytes(), "actions.txt", b"") {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cannot build the inventory: {e}");
            std::process::exit(1);
        }
    }
}

fn input(subject: &str, role: &str, action: &str) -> CheckInput<'static> {
    CheckInput {
        request: pdp_engine::Request {
            subject: pdp_engine::Subject {
                id: subject.into(),
                roles: vec![role.into()].into(),
                ..Default::default()
            },
            action: action.into(),
            ..Default::default()
        },
        trusted: true,
        ..Default::default()
    }
}

fn main() {
    let mode = util::Mode::current();
    let set = pdp_engine::PolicySet::builder()
        .policy_yaml("docs", POLICY)
        .policy_yaml("admin", ADMIN)
        .bindings_yaml(
            "bindings.yaml",
            "roles: { reader: { policies: [docs] }, admin: { policies: [admin] } }",
        )
        .build();
    let set = match set {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot build the set: {e}");
            std::process::exit(1);
        }
    };
    let snapshot = Snapshot::new(set, Default::default()).with_inventory(Arc::new(inventory()));
    let state = Arc::new(State::serving(snapshot, 1000));
    let decider = Decider::new(state.clone());
    let call = Call::new(
        "search",
        &pdp_server::caller::Caller::unknown(),
        false,
        None,
    );
    let cases = [
        ("own documents (id range)", "user-500", "reader", "doc:read"),
        (
            "tagged with the subject (posting list)",
            "user-500",
            "reader",
            "doc:share",
        ),
        ("everything (admin)", "root", "admin", "doc:read"),
        (
            "StringLike tag (no narrowing)",
            "user-500",
            "reader",
            "doc:list",
        ),
        (
            "StringLike tag matching none (work bound)",
            "user-500",
            "reader",
            "doc:find",
        ),
    ];
    let page = |subject: &str, role: &str, action: &str| {
        let snapshot = state.snapshot();
        let searcher = Searcher {
            decider: &decider,
            snapshot: &snapshot,
            call: &call,
        };
        let paging = Paging {
            token: "",
            limit: Some(100),
            fingerprint: b"bench",
        };
        searcher.resources(input(subject, role, action), "doc", &paging)
    };
    for (name, subject, role, action) in cases {
        // Every case fills its page but the last, which examines as many resources as a
        // call may and ends with an empty page and a token to go on.
        let expected = if action == "doc:find" { 0 } else { 100 };
        match page(subject, role, action) {
            Ok(f) if f.results.len() == expected && (expected > 0 || !f.next_token.is_empty()) => {}
            Ok(f) => {
                eprintln!(
                    "{name}: {} results (token `{}`), not {expected}",
                    f.results.len(),
                    f.next_token
                );
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    if !mode.quick {
        let mut c = Criterion::default().configure_from_args();
        for (name, subject, role, action) in cases {
            c.bench_function(&format!("search/resources/{name}"), |b| {
                b.iter(|| black_box(page(subject, role, action)))
            });
        }
        c.final_summary();
    }
    if !mode.report() {
        return;
    }
    println!(
        "resource search, one page of 100 from {} resources (median per page; target <= {TARGET_MS} ms)",
        OWNERS * PER_OWNER
    );
    for (name, subject, role, action) in cases {
        let ms = util::median_ns(20, || {
            let _ = black_box(page(subject, role, action));
        }) / 1e6;
        println!(
            "{name:<46} {ms:>9.3} ms {}",
            if ms <= TARGET_MS { "ok" } else { "OVER TARGET" }
        );
    }
}
