//! `veltrix group list|describe|reset-offsets|delete`: consumer group
//! administration.
//!
//! `list` prints one group per line, its id, state and protocol type separated
//! by tabs, sorted by id, for scripts. `describe` prints the group's state and
//! members, each member's subscription and assigned partitions decoded from
//! the consumer protocol's bytes, then, for every partition of the topics the
//! group has committed offsets for or is assigned, the committed offset, the
//! log end offset (ListOffsets) and the lag between them; `--format json`
//! prints the same as one JSON object. For a share group (KIP-932) it prints
//! the members and their assignments (ShareGroupDescribe) and, instead of
//! committed offsets, each share-partition's start offset
//! (DescribeShareGroupOffsets).
//!
//! `reset-offsets` computes new committed offsets for a topic's partitions
//! (earliest, latest, at a time, or a given offset clamped to the log) and
//! prints the plan; only with `--execute` does it commit them. It commits from
//! outside the group (generation -1, no member id), which brokers accept only
//! while the group has no active members, so an active group is refused before
//! anything is sent, and a group that became active meanwhile is reported as
//! such. `delete` removes an empty group and its offsets.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};
use veltrix_client::{
    CONSUMER_PROTOCOL_TYPE, Client, ClientError, CommittedOffset, GroupDescription, GroupMember, OffsetSpec,
    OffsetToCommit, SHARE_PROTOCOL_TYPE, TopicPartitions, decode_assignment, decode_subscription,
    is_active_group_error,
};

use super::consume::Format;
use super::time::parse_time;
use super::{ConnectArgs, block_on, plural, print_table};

/// What follows a refusal because the group has members.
const STOP_THEM_FIRST: &str = "the group has active members; stop them first";

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand, Debug)]
enum GroupCommand {
    /// Lists the groups: id, state and protocol type, tab-separated.
    List(ConnectArgs),
    /// Shows a group's members, their partitions, and its committed offsets
    /// and lag.
    Describe(DescribeArgs),
    /// Plans, and with --execute commits, new offsets for an inactive group.
    ResetOffsets(ResetArgs),
    /// Deletes an empty group and its committed offsets.
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The group's id.
    group: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct ResetArgs {
    /// The group's id.
    group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Reset only this partition (else all of the topic's); repeatable.
    #[arg(long = "partition", value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partitions: Vec<i32>,
    #[command(flatten)]
    target: TargetArgs,
    /// Commit the new offsets; without it, only print the plan.
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Where to reset to: exactly one of these.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// The oldest record still kept (the log start offset).
    #[arg(long)]
    to_earliest: bool,
    /// The end of the log: skip everything written so far.
    #[arg(long)]
    to_latest: bool,
    /// The first record stamped at or after this time, or the end if there is
    /// none: RFC 3339 (2024-05-01T12:00:00Z) or milliseconds since the epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to_datetime: Option<i64>,
    /// This offset, clamped to the log start and end.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    /// The group's id.
    group: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            GroupCommand::List(a) => list(a).await,
            GroupCommand::Describe(a) => describe(a).await,
            GroupCommand::ResetOffsets(a) => reset_offsets(a).await,
            GroupCommand::Delete(a) => delete(a).await,
        }
    })
}

/// A number, or `-` for none.
fn or_dash(n: Option<i64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

async fn list(connect: ConnectArgs) -> anyhow::Result<()> {
    let mut client = connect.connect().await?;
    let mut groups = client.list_groups().await?;
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    // ListGroups before v4 does not say the state; DescribeGroups does.
    let missing: Vec<&str> = groups
        .iter()
        .filter(|g| g.state.is_none())
        .map(|g| g.group_id.as_str())
        .collect();
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    if !missing.is_empty() {
        for d in client.describe_groups(&missing).await? {
            states.insert(d.group_id, d.state);
        }
    }
    // Nothing on stdout, so a script reading it sees no rows; a person is told.
    if groups.is_empty() {
        eprintln!("no consumer groups");
    }
    for g in &groups {
        let state = g.state.as_ref().or_else(|| states.get(&g.group_id));
        println!(
            "{}\t{}\t{}",
            g.group_id,
            state.map_or("-", String::as_str),
            g.protocol_type
        );
    }
    Ok(())
}

/// A member with its consumer protocol bytes decoded, or why they could not
/// be.
struct MemberView<'a> {
    member: &'a GroupMember,
    subscription: Result<Vec<String>, String>,
    assignment: Result<Vec<TopicPartitions>, String>,
}

fn member_view<'a>(group: &GroupDescription, member: &'a GroupMember) -> MemberView<'a> {
    if let (Some(subscribed), Some(assigned)) = (&member.subscribed, &member.assigned) {
        return MemberView {
            member,
            subscription: Ok(subscribed.clone()),
            assignment: Ok(assigned.clone()),
        };
    }
    if group.protocol_type != CONSUMER_PROTOCOL_TYPE {
        let opaque = |n: usize| {
            format!(
                "{} of protocol type `{}`",
                plural(u64::try_from(n).unwrap_or(u64::MAX), "byte"),
                group.protocol_type
            )
        };
        return MemberView {
            member,
            subscription: Err(opaque(member.metadata.len())),
            assignment: Err(opaque(member.assignment.len())),
        };
    }
    MemberView {
        member,
        subscription: decode_subscription(&member.metadata)
            .map(|s| s.topics)
            .map_err(|e| e.to_string()),
        assignment: decode_assignment(&member.assignment)
            .map(|a| a.partitions)
            .map_err(|e| e.to_string()),
    }
}

/// `orders:0,1,2 payments:0`, or `-` for none.
fn assignment_text(assignment: &Result<Vec<TopicPartitions>, String>) -> String {
    match assignment {
        Ok(topics) if topics.is_empty() => "-".to_owned(),
        Ok(topics) => topics
            .iter()
            .map(|t| {
                let partitions: Vec<String> = t.partitions.iter().map(i32::to_string).collect();
                format!("{}:{}", t.topic, partitions.join(","))
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("({e})"),
    }
}

fn subscription_text(subscription: &Result<Vec<String>, String>) -> String {
    match subscription {
        Ok(topics) if topics.is_empty() => "-".to_owned(),
        Ok(topics) => topics.join(","),
        Err(e) => format!("({e})"),
    }
}

/// One partition of the offsets table.
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    /// The log end offset; `None` if the partition no longer exists.
    end: Option<i64>,
    /// The member assigned the partition, if any.
    member: Option<String>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some(self.end? - self.committed?)
    }
}

/// Every partition of the topics the group has committed for or is assigned:
/// committed offset, end offset, owner. A topic that no longer exists keeps its
/// committed partitions, with a warning and no end.
async fn offset_rows(
    client: &mut Client,
    committed: &[CommittedOffset],
    owners: &BTreeMap<(String, i32), String>,
) -> anyhow::Result<Vec<OffsetRow>> {
    let mut partitions: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for c in committed {
        partitions.entry(&c.topic).or_default().insert(c.partition);
    }
    for (topic, partition) in owners.keys() {
        partitions.entry(topic).or_default().insert(*partition);
    }
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = partitions.keys().copied().collect();
    let metadata = client.metadata(Some(&names)).await?;
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in &metadata.topics {
        let Some(known) = partitions.get_mut(topic.name.as_str()) else {
            continue;
        };
        if let Some(e) = &topic.error {
            eprintln!("warning: topic `{}`: {e}; its end offsets are unknown", topic.name);
            continue;
        }
        known.extend(topic.partitions.iter().map(|p| p.index));
        let ask: Vec<(i32, OffsetSpec)> = topic.partitions.iter().map(|p| (p.index, OffsetSpec::Latest)).collect();
        for listed in client.list_offsets(&topic.name, &ask).await? {
            if let Some(end) = listed.offset {
                ends.insert((topic.name.clone(), listed.partition), end);
            }
        }
    }
    let mut rows = Vec::new();
    for (topic, set) in partitions {
        for partition in set {
            let key = (topic.to_owned(), partition);
            rows.push(OffsetRow {
                topic: topic.to_owned(),
                partition,
                committed: committed
                    .iter()
                    .find(|c| c.topic == topic && c.partition == partition)
                    .and_then(|c| c.offset),
                end: ends.get(&key).copied(),
                member: owners.get(&key).cloned(),
            });
        }
    }
    Ok(rows)
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect_to_coordinator(&args.group).await?;
    let share = client
        .list_groups()
        .await?
        .iter()
        .any(|g| g.group_id == args.group && g.protocol_type == SHARE_PROTOCOL_TYPE);
    let (group, committed) = if share {
        // A share group's position is each share-partition's start offset.
        let group = client.describe_share_group(&args.group).await?;
        let starts = client.share_start_offsets(&args.group).await?;
        let committed = starts
            .into_iter()
            .map(|s| CommittedOffset {
                topic: s.topic,
                partition: s.partition,
                offset: Some(s.start_offset),
                leader_epoch: None,
                metadata: None,
            })
            .collect();
        (group, committed)
    } else {
        let group = client.describe_group(&args.group).await?;
        let committed = client.committed_offsets(&args.group, None).await?;
        (group, committed)
    };
    // Brokers describe a group they do not know as Dead with no members.
    if group.state == "Dead" && group.members.is_empty() && committed.is_empty() {
        bail!("group `{}` does not exist", args.group);
    }
    let members: Vec<MemberView> = group.members.iter().map(|m| member_view(&group, m)).collect();
    let mut owners = BTreeMap::new();
    for m in &members {
        for t in m.assignment.iter().flatten() {
            for p in &t.partitions {
                owners.insert((t.topic.clone(), *p), m.member.member_id.clone());
            }
        }
    }
    let rows = offset_rows(&mut client, &committed, &owners).await?;
    match args.format {
        Format::Text => print_description(&group, &members, &rows),
        Format::Json => println!("{}", description_json(&group, &members, &rows)),
    }
    Ok(())
}

fn print_description(group: &GroupDescription, members: &[MemberView], rows: &[OffsetRow]) {
    let dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    println!("Group: {}", group.group_id);
    println!("State: {}", group.state);
    println!("Protocol type: {}", dash(&group.protocol_type));
    println!("Protocol: {}", dash(&group.protocol));
    println!("Members: {}", members.len());
    if !members.is_empty() {
        println!();
        let table: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                let id = match &m.member.instance_id {
                    Some(instance) => format!("{} (instance {instance})", m.member.member_id),
                    None => m.member.member_id.clone(),
                };
                vec![
                    id,
                    dash(&m.member.client_id),
                    dash(&m.member.client_host),
                    subscription_text(&m.subscription),
                    assignment_text(&m.assignment),
                ]
            })
            .collect();
        print_table(
            &["MEMBER-ID", "CLIENT-ID", "HOST", "SUBSCRIPTION", "ASSIGNMENT"],
            &table,
        );
    }
    println!();
    let share = group.group_type == SHARE_PROTOCOL_TYPE;
    if rows.is_empty() {
        println!(
            "{}",
            if share {
                "No share-partition state."
            } else {
                "No committed offsets."
            }
        );
        return;
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                or_dash(r.committed),
                or_dash(r.end),
                or_dash(r.lag()),
                r.member.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let position = if share { "START" } else { "COMMITTED" };
    print_table(&["TOPIC", "PARTITION", position, "END", "LAG", "MEMBER-ID"], &table);
    if share {
        println!();
        println!("START is each share-partition's start offset: records before it are all acknowledged.");
        println!("LAG counts the records from it to the end, those acknowledged past it included; the");
        println!(
            "records in flight and their delivery counts: GET /api/v1/groups/{}",
            group.group_id
        );
    }
}

fn description_json(group: &GroupDescription, members: &[MemberView], rows: &[OffsetRow]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            let mut v = json!({
                "member_id": m.member.member_id,
                "instance_id": m.member.instance_id,
                "client_id": m.member.client_id,
                "host": m.member.client_host,
                "subscription": m.subscription.as_ref().ok(),
                "assignment": m.assignment.as_ref().ok().map(|topics| {
                    topics
                        .iter()
                        .map(|t| json!({ "topic": t.topic, "partitions": t.partitions }))
                        .collect::<Vec<_>>()
                }),
            });
            if let Err(e) = &m.subscription {
                v["subscription_error"] = json!(e);
            }
            if let Err(e) = &m.assignment {
                v["assignment_error"] = json!(e);
            }
            v
        })
        .collect();
    let offsets: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "topic": r.topic,
                "partition": r.partition,
                "committed": r.committed,
                "end": r.end,
                "lag": r.lag(),
                "member_id": r.member,
            })
        })
        .collect();
    json!({
        "group": group.group_id,
        "type": group.group_type,
        "state": group.state,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol,
        "members": members,
        "offsets": offsets,
    })
}

/// Where `reset-offsets` moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Time(i64),
    Offset(i64),
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (self.to_earliest, self.to_latest, self.to_datetime, self.to_offset) {
            (true, ..) => Target::Earliest,
            (_, true, ..) => Target::Latest,
            (_, _, Some(ms), _) => Target::Time(ms),
            (_, _, _, Some(offset)) => Target::Offset(offset),
            // clap requires exactly one of them.
            _ => unreachable!("no reset target"),
        }
    }
}

/// One partition of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedReset {
    partition: i32,
    current: Option<i64>,
    new: i64,
    /// Why the wanted offset was moved into the log, if it was.
    clamped: Option<String>,
}

/// An offset moved into the log, and why it had to move, if it did.
#[derive(Debug, PartialEq, Eq)]
struct Clamped {
    offset: i64,
    why: Option<String>,
}

/// `wanted` within `[start, end]`, and a warning if it had to move.
fn clamp(partition: i32, wanted: i64, start: i64, end: i64) -> Clamped {
    if wanted < start {
        let why = format!("partition {partition}: offset {wanted} is before the log start {start}; using {start}");
        Clamped {
            offset: start,
            why: Some(why),
        }
    } else if wanted > end {
        let why = format!("partition {partition}: offset {wanted} is past the log end {end}; using {end}");
        Clamped {
            offset: end,
            why: Some(why),
        }
    } else {
        Clamped {
            offset: wanted,
            why: None,
        }
    }
}

/// The partitions to reset: those asked for, which must exist, or all.
fn chosen_partitions(topic: &str, existing: &[i32], asked: &[i32]) -> anyhow::Result<Vec<i32>> {
    if asked.is_empty() {
        return Ok(existing.to_vec());
    }
    let mut chosen: Vec<i32> = asked.to_vec();
    chosen.sort_unstable();
    chosen.dedup();
    if let Some(p) = chosen.iter().find(|p| !existing.contains(p)) {
        bail!(
            "topic `{topic}` has no partition {p}: it has {}",
            plural(u64::try_from(existing.len()).unwrap_or(u64::MAX), "partition")
        );
    }
    Ok(chosen)
}

async fn plan_reset(
    client: &mut Client,
    args: &ResetArgs,
    partitions: &[i32],
    target: Target,
) -> anyhow::Result<Vec<PlannedReset>> {
    let topic = args.topic.as_str();
    let ask = |spec| partitions.iter().map(|p| (*p, spec)).collect::<Vec<_>>();
    let starts = client.list_offsets(topic, &ask(OffsetSpec::Earliest)).await?;
    let ends = client.list_offsets(topic, &ask(OffsetSpec::Latest)).await?;
    let found = match target {
        Target::Time(ms) => Some(client.list_offsets(topic, &ask(OffsetSpec::Timestamp(ms))).await?),
        _ => None,
    };
    let wanted_partitions: Vec<(&str, i32)> = partitions.iter().map(|p| (topic, *p)).collect();
    let committed = client.committed_offsets(&args.group, Some(&wanted_partitions)).await?;
    let mut plan = Vec::with_capacity(partitions.len());
    for (i, &partition) in partitions.iter().enumerate() {
        let start = starts[i].offset.unwrap_or(0);
        let end = ends[i].offset.unwrap_or(start);
        let wanted = match target {
            Target::Earliest => start,
            Target::Latest => end,
            // No record at or after the time: the end, as Kafka's tool does.
            Target::Time(_) => found.as_ref().and_then(|f| f[i].offset).unwrap_or(end),
            Target::Offset(offset) => offset,
        };
        let Clamped {
            offset: new,
            why: clamped,
        } = clamp(partition, wanted, start, end);
        let current = committed
            .iter()
            .find(|c| c.topic == topic && c.partition == partition)
            .and_then(|c| c.offset);
        plan.push(PlannedReset {
            partition,
            current,
            new,
            clamped,
        });
    }
    Ok(plan)
}

/// Adds what a refusal of an active group means to the broker's error.
fn explain_active(e: ClientError) -> anyhow::Error {
    match e.kafka_error() {
        Some(k) if is_active_group_error(k) => anyhow!("{e}; {STOP_THEM_FIRST}"),
        _ => e.into(),
    }
}

async fn reset_offsets(args: ResetArgs) -> anyhow::Result<()> {
    let target = args.target.target();
    let mut client = args.connect.connect().await?;
    let topic = client.topic(&args.topic).await?;
    let existing: Vec<i32> = topic.partitions.iter().map(|p| p.index).collect();
    let partitions = chosen_partitions(&args.topic, &existing, &args.partitions)?;
    let group = client.describe_group(&args.group).await?;
    let active = (!group.members.is_empty()).then(|| {
        format!(
            "group `{}` has active members ({}, state {})",
            args.group,
            group.members.len(),
            group.state
        )
    });
    if args.execute
        && let Some(active) = &active
    {
        bail!("{active}; stop them first: offsets can be reset only while no consumer is in the group");
    }
    let plan = plan_reset(&mut client, &args, &partitions, target).await?;
    for warning in plan.iter().filter_map(|p| p.clamped.as_ref()) {
        eprintln!("warning: {warning}");
    }
    let table: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                args.topic.clone(),
                p.partition.to_string(),
                or_dash(p.current),
                p.new.to_string(),
            ]
        })
        .collect();
    print_table(&["TOPIC", "PARTITION", "CURRENT", "NEW"], &table);
    println!();
    if !args.execute {
        if let Some(active) = &active {
            eprintln!("warning: {active}; --execute will be refused until they stop");
        }
        println!("dry run: nothing committed; run again with --execute to commit these offsets");
        return Ok(());
    }
    let offsets: Vec<OffsetToCommit> = plan
        .iter()
        .map(|p| OffsetToCommit {
            topic: &args.topic,
            partition: p.partition,
            offset: p.new,
        })
        .collect();
    client
        .commit_offsets(&args.group, &offsets)
        .await
        .map_err(explain_active)?;
    println!(
        "committed new offsets of {} of topic {} for group {}",
        plural(u64::try_from(plan.len()).unwrap_or(u64::MAX), "partition"),
        args.topic,
        args.group
    );
    Ok(())
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect().await?;
    if let Err(e) = client.delete_group(&args.group).await {
        let hint = match e.kafka_error().map(|k| k.name()).as_deref() {
            Some("NON_EMPTY_GROUP") => STOP_THEM_FIRST,
            Some("GROUP_ID_NOT_FOUND") => "no such group",
            _ => return Err(e.into()),
        };
        bail!("{e}; {hint}");
    }
    println!("deleted group {}", args.group);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn offsets_outside_the_log_are_clamped_with_a_reason() {
        let inside = |offset| Clamped { offset, why: None };
        assert_eq!(clamp(0, 5, 2, 9), inside(5));
        assert_eq!(clamp(0, 2, 2, 9), inside(2));
        assert_eq!(clamp(0, 9, 2, 9), inside(9));
        let Clamped { offset, why } = clamp(1, 0, 2, 9);
        assert_eq!(offset, 2);
        assert_eq!(why.unwrap(), "partition 1: offset 0 is before the log start 2; using 2");
        let Clamped { offset, why } = clamp(3, 100, 2, 9);
        assert_eq!(offset, 9);
        assert_eq!(why.unwrap(), "partition 3: offset 100 is past the log end 9; using 9");
    }

    #[test]
    fn chosen_partitions_must_exist() {
        assert_eq!(chosen_partitions("t", &[0, 1, 2], &[]).unwrap(), [0, 1, 2]);
        assert_eq!(chosen_partitions("t", &[0, 1, 2], &[2, 0, 2]).unwrap(), [0, 2]);
        let e = chosen_partitions("t", &[0, 1], &[1, 5]).unwrap_err();
        assert_eq!(e.to_string(), "topic `t` has no partition 5: it has 2 partitions");
    }

    fn member(metadata: &[u8], assignment: &[u8]) -> GroupMember {
        GroupMember {
            member_id: "m-1".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            metadata: Bytes::copy_from_slice(metadata),
            assignment: Bytes::copy_from_slice(assignment),
            subscribed: None,
            assigned: None,
        }
    }

    fn group(protocol_type: &str) -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            state: "Stable".into(),
            protocol_type: protocol_type.into(),
            protocol: "range".into(),
            members: Vec::new(),
            group_type: "classic".into(),
        }
    }

    #[test]
    fn consumer_members_are_decoded_and_others_described() {
        // v0 subscription to `ab`; v0 assignment of `ab` partitions 0 and 2.
        let subscription = [0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff];
        let assignment = [
            0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff,
        ];
        let m = member(&subscription, &assignment);
        let view = member_view(&group("consumer"), &m);
        assert_eq!(subscription_text(&view.subscription), "ab");
        assert_eq!(assignment_text(&view.assignment), "ab:0,2");
        let empty = member(&subscription, &[]);
        assert_eq!(
            assignment_text(&member_view(&group("consumer"), &empty).assignment),
            "-"
        );
        let damaged = member(&subscription, &assignment[..9]);
        let text = assignment_text(&member_view(&group("consumer"), &damaged).assignment);
        assert!(text.starts_with("(invalid consumer protocol assignment: "), "{text}");
        let connect = member_view(&group("connect"), &m);
        assert_eq!(
            assignment_text(&connect.assignment),
            "(26 bytes of protocol type `connect`)"
        );
    }

    #[test]
    fn a_refusal_of_an_active_group_says_what_to_do() {
        let refused = |code| ClientError::Kafka {
            context: "committing offsets for group `g`".into(),
            error: veltrix_client::KafkaError::from_code(code, None).unwrap(),
        };
        assert_eq!(
            explain_active(refused(22)).to_string(),
            "committing offsets for group `g`: ILLEGAL_GENERATION; the group has active members; stop them first"
        );
        assert_eq!(
            explain_active(refused(25)).to_string(),
            "committing offsets for group `g`: UNKNOWN_MEMBER_ID; the group has active members; stop them first"
        );
        assert_eq!(
            explain_active(refused(3)).to_string(),
            "committing offsets for group `g`: UNKNOWN_TOPIC_OR_PARTITION"
        );
    }

    #[test]
    fn lag_needs_both_offsets() {
        let row = |committed, end| OffsetRow {
            topic: "t".into(),
            partition: 0,
            committed,
            end,
            member: None,
        };
        assert_eq!(row(Some(3), Some(10)).lag(), Some(7));
        assert_eq!(row(None, Some(10)).lag(), None);
        assert_eq!(row(Some(3), None).lag(), None);
    }
}
