//! `veltrix dlq redrive` against a real broker: the plan is answered
//! whatever the broker's settings, the redrive itself only when the broker
//! takes changes over HTTP (`[listeners] http_mutations = true`), and the
//! refusal says which setting to change.

use std::process::Command;

use crate::common::{BIN, BrokerGuard, Output, Serve, run, shared, start_broker};

/// `veltrix dlq ARGS --http <the broker's HTTP listener>`.
fn dlq(b: &BrokerGuard, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("dlq").args(args).args(["--http", &b.http]);
    run(command, b"")
}

/// Topic `orders`, and dead-letter topic `dlq` holding one letter of a
/// record of it.
fn one_letter(b: &BrokerGuard) {
    b.ok(&["topic", "create", "orders", "--partitions", "1"]);
    b.ok(&["topic", "create", "dlq", "--partitions", "1"]);
    b.ok_with(
        &[
            "produce",
            "dlq",
            "--header",
            "__dlq.errors.topic=orders",
            "--header",
            "__dlq.errors.partition=0",
        ],
        b"poison\n",
    );
}

#[test]
fn a_redrive_is_refused_with_the_setting_to_change_while_changes_are_off() {
    let _machine = shared();
    let b = start_broker();
    one_letter(&b);
    let plan = dlq(&b, &["redrive", "dlq", "--dry-run"]);
    assert_eq!(plan.code, Some(0), "{plan:?}");
    assert!(plan.stdout.contains("1 letters selected"), "{plan:?}");
    assert!(plan.stdout.contains("nothing moved"), "{plan:?}");
    let refused = dlq(&b, &["redrive", "dlq", "--wait"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.starts_with("error: POST "), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "403 Forbidden: the broker takes no changes over HTTP; set `[listeners] http_mutations = true` in its \
             configuration file (or VELTRIX_LISTENERS__HTTP_MUTATIONS=true in its environment) and restart it"
        ),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    let jobs = dlq(&b, &["jobs", "--format", "json"]);
    assert!(jobs.stdout.contains("\"redrives\": []"), "{jobs:?}");
}

#[test]
fn a_redrive_moves_the_letter_back_when_changes_are_on() {
    let _machine = shared();
    let b = Serve::new().env("VELTRIX_LISTENERS__HTTP_MUTATIONS", "true").start();
    one_letter(&b);
    let done = dlq(&b, &["redrive", "dlq", "--wait"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(done.stdout.contains("redrive 1 done: 1 moved"), "{done:?}");
    let moved = b.records("orders", &["--from-beginning"]);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["value"], "poison");
}
